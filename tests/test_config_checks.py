"""`cmt-config validate` refuses what cannot run, naming file, field and
value (issue 14, defect 5), without TensorFlow."""

import subprocess
import sys

import pytest

from cmt import config
from cmt import config_checks
from cmt.tools import config as config_tool
from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / 'configs' / 'demo' / 'cmt_deeplab_synthetic_cpu.textproto'


def _validate(capsys, *args):
  status = config_tool.main(['validate', *map(str, args)])
  out, err = capsys.readouterr()
  return status, out, err


def _refused(capsys, *overrides, path=DEMO):
  """validate DEMO with overrides: exit 1 and ONE line naming the file."""
  status, out, err = _validate(
      capsys, path, *[f'--override={o}' for o in overrides])
  assert status == 1, out
  assert len(err.strip().splitlines()) == 1, err
  assert err.startswith(f'cmt-config: error: {path}: '), err
  return err


@pytest.mark.parametrize('overrides, fragment', [
    # Crops must be output_stride * k + 1 (DeepLab2's rule).
    (['train_dataset_options.crop_size=64,64'],
     'train_dataset_options.crop_size = [64, 64]: each side must be '
     'output_stride * k + 1 (output_stride 16: e.g. 49 or 65)'),
    (['eval_dataset_options.crop_size=70,70'],
     'eval_dataset_options.crop_size = [70, 70]: each side must be '
     'output_stride * k + 1'),
    (['model_options.backbone.output_stride=32',
      'train_dataset_options.crop_size=81,81'],
     'train_dataset_options.crop_size = [81, 81]: each side must be '
     'output_stride * k + 1 (output_stride 32: e.g. 65 or 97)'),
    (['model_options.transformer.num_cluster_centers=4'],
     'train_dataset_options.max_num_masks = 8: must be <= '
     'model_options.transformer.num_cluster_centers (4)'),
    (['model_options.transformer.num_heads=0'],
     'model_options.transformer.num_heads = 0: must be >= 1'),
    # One rule with the model: memory_channels / 2 splits over the heads.
    (['model_options.transformer.num_heads=16'],
     'model_options.transformer.memory_channels = 16: must be even with '
     'memory_channels / 2 divisible by num_heads (16), e.g. 32'),
    (['trainer_options.solver_options.base_learning_rate=-0.1'],
     'trainer_options.solver_options.base_learning_rate = -0.1: must be a '
     'finite number > 0'),
    (['trainer_options.solver_options.base_learning_rate=inf'],
     'base_learning_rate = inf: must be a finite number > 0'),
    (['trainer_options.solver_options.base_learning_rate=nan'],
     'base_learning_rate = nan: must be a finite number > 0'),
    (['trainer_options.solver_options.weight_decay=-inf'],
     'weight_decay = -inf: must be a finite number >= 0'),
    (['train_dataset_options.batch_size=0'],
     'train_dataset_options.batch_size = 0: must be >= 1'),
    (['eval_dataset_options.batch_size_per_replica=0'],
     'eval_dataset_options.batch_size_per_replica = 0: must be >= 1'),
    # Training states the global batch.
    (['train_dataset_options.batch_size_per_replica=2'],
     'train_dataset_options.batch_size_per_replica = 2: evaluation only; '
     'training states the global batch_size'),
    (['trainer_options.solver_options.training_number_of_steps=0'],
     'training_number_of_steps = 0: must be >= 1'),
    (['trainer_options.solver_options.warmup_steps=200'],
     'warmup_steps = 200: must be >= 0 and < training_number_of_steps (200)'),
    (['trainer_options.loss_options.pq_style_loss.weight=nan'],
     'pq_style_loss.weight = nan: must be a finite number >= 0'),
    (['evaluator_options.overlap_threshold=1.5'],
     'evaluator_options.overlap_threshold = 1.5: must lie in [0, 1]'),
    (['model_options.backbone.width_multiplier=0.05'],
     'model_options.backbone.width_multiplier = 0.05: gives stage-4 axial '
     'blocks 13 channels'),
    (['model_options.backbone.axial_query_region=3'],
     'stage-4 axial attention at stride 16 spans 5 positions, more than '
     'model_options.backbone.axial_query_region (3)'),
    (['trainer_options.steps_per_loop=3'],
     'trainer_options.save_summaries_steps = 10: must be a multiple of '
     'steps_per_loop (3)'),
    (['trainer_options.solver_options.batchnorm_momentum=1'],
     'batchnorm_momentum = 1: must lie in [0, 1)'),
    (['model_options.heads.class_void_prior=0'],
     'class_void_prior = 0: must lie in (0, 1)'),
    (['train_dataset_options.augmentations.min_scale_factor=0'],
     'augmentations.min_scale_factor = 0: need 0 < min_scale_factor'),
    (['trainer_options.solver_options.optimizer=OPTIMIZER_UNSPECIFIED'],
     'optimizer = OPTIMIZER_UNSPECIFIED: choose ADAM or ADAMW or SGD'),
    (['model_options.initial_checkpoint_num_blocks=3,4,6'],
     'model_options.initial_checkpoint_num_blocks = [3, 4, 6]: must list 4 '
     'positive counts (stages 2-5)'),
])
def test_validate_refuses_what_cannot_run(capsys, overrides, fragment):
  assert fragment in _refused(capsys, *overrides)


def test_validate_refuses_an_empty_file_saying_what_is_missing(tmp_path,
                                                               capsys):
  empty = tmp_path / 'empty.textproto'
  empty.write_text('')
  error = _refused(capsys, path=empty)
  assert 'the config sets nothing' in error
  assert 'train_dataset_options and eval_dataset_options' in error


def test_validate_names_a_binary_file_in_one_line(tmp_path, capsys):
  binary = tmp_path / 'model.ckpt'
  binary.write_bytes(bytes(range(256)) * 4)
  error = _refused(capsys, path=binary)
  assert 'not a text config' in error


def test_validate_and_print_treat_a_numeric_placeholder_alike(tmp_path,
                                                              capsys):
  text = DEMO.read_text().replace('batch_size: 4', 'batch_size: ${BS}')
  path = tmp_path / 'bs.textproto'
  path.write_text(text)
  params = ['--param=BS=2', '--param=TRAIN_SET=t', '--param=VAL_SET=v',
            '--param=CATEGORIES_JSON=c.json']
  assert config_tool.main(['print', str(path), *params]) == 0
  assert 'batch_size: 2' in capsys.readouterr().out
  status, out, _ = _validate(capsys, path, '--param=BS=2')
  assert status == 0
  assert 'OK' in out
  # Without a value it cannot be checked; the message says how to give one.
  error = _refused(capsys, path=path)
  assert '${BS} at' in error and '--param BS=VALUE' in error
  status, out, _ = _validate(capsys, path, '--param=BS=0')
  assert status == 1


def test_every_shipped_config_validates(capsys):
  paths = sorted((REPO_ROOT / 'configs').rglob('*.textproto'))
  assert len(paths) > 20
  status, out, err = _validate(capsys, *paths)
  assert status == 0, err
  assert out.count(': OK') == len(paths)


def test_the_build_path_runs_the_same_checks():
  options = config.load_config(
      str(DEMO), params={'TRAIN_SET': 't', 'VAL_SET': 'v',
                         'CATEGORIES_JSON': 'c'},
      overrides=['model_options.transformer.num_heads=0'], check=False)
  with pytest.raises(config.ConfigError, match='num_heads = 0'):
    config.require_runnable(options, config_checks.MODE_PURPOSES['train'])
  # Evaluation alone does not need the training set; training does.
  options = config.load_config(
      str(DEMO), params={'TRAIN_SET': 't', 'VAL_SET': 'v',
                         'CATEGORIES_JSON': 'c'})
  options.ClearField('train_dataset_options')
  config.require_runnable(options, config_checks.MODE_PURPOSES['eval'])
  config.require_runnable(options, (config_checks.EXPORT,))
  with pytest.raises(config.ConfigError,
                     match='train_dataset_options: missing; needed to train'):
    config.require_runnable(options, config_checks.MODE_PURPOSES['train'])


def test_validation_imports_no_tensorflow():
  code = ('import sys; from cmt.tools import config as config_tool; '
          f'assert config_tool.main(["validate", {str(DEMO)!r}]) == 0; '
          'assert "tensorflow" not in sys.modules, "tensorflow imported"')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stderr

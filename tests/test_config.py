"""cmt.config: placeholders, overrides, parse errors, cross-field checks."""

import pytest

from cmt import config
from cmt.protos import model_pb2
from cmt.protos import trainer_pb2

MINIMAL = '''
experiment_name: "${NAME}"
model_options {
  backbone { name: AXIAL_RESNET_50 }
  decoder {
    transformer_stages { backbone_stage: 5 num_blocks: 3 }
    transformer_stages { backbone_stage: 4 num_blocks: 3 }
  }
}
train_dataset_options {
  dataset: "coco_panoptic"
  file_pattern: "${TRAIN_SET}"
  crop_size: 641
  crop_size: 641
}
'''


def write(tmp_path, text, name='exp.textproto'):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_loads_and_fills_placeholders_from_params_then_environment(tmp_path):
  path = write(tmp_path, MINIMAL)
  options = config.load_config(path, params={'NAME': 'run1'},
                               environ={'TRAIN_SET': '/data/train-*',
                                        'NAME': 'from-env'})
  assert options.experiment_name == 'run1'
  assert list(options.train_dataset_options.file_pattern) == ['/data/train-*']
  assert len(options.model_options.decoder.transformer_stages) == 2


def test_defaults_are_the_papers(tmp_path):
  options = config.load_config(write(tmp_path, MINIMAL),
                               params={'NAME': 'a', 'TRAIN_SET': 'b'})
  solver = options.trainer_options.solver_options
  assert solver.base_learning_rate == pytest.approx(1e-3)
  assert solver.warmup_steps == 5000
  assert solver.backbone_learning_rate_multiplier == pytest.approx(0.1)
  assert solver.weight_decay == 0.0
  loss = options.trainer_options.loss_options
  assert loss.pq_style_loss.weight == 3.0
  assert loss.instance_discrimination_loss.sample_count == 4096
  assert options.model_options.transformer.num_cluster_centers == 128
  assert options.model_options.clustering.num_reference_points == 8
  assert options.model_options.backbone.drop_path_rate == pytest.approx(0.2)


def test_unfilled_placeholder_names_it_and_its_line(tmp_path):
  path = write(tmp_path, MINIMAL)
  with pytest.raises(config.ConfigError) as error:
    config.load_config(path, params={'NAME': 'x'}, environ={})
  assert '${TRAIN_SET}' in str(error.value)
  assert f'{path}:12:' in str(error.value)


def test_placeholders_in_comments_are_ignored(tmp_path):
  path = write(tmp_path, '# set ${NOT_USED} if you like\nexperiment_name: "a"\n'
               'train_dataset_options { dataset: "coco_panoptic" }\n')
  assert config.load_config(path, environ={}).experiment_name == 'a'


def test_typo_in_field_names_file_line_and_column(tmp_path):
  path = write(tmp_path, 'experiment_name: "a"\nmodel_options {\n'
               '  backbone { nmae: AXIAL_RESNET_50 }\n}\n')
  with pytest.raises(config.ConfigError) as error:
    config.load_config(path)
  message = str(error.value)
  assert message.startswith(f'{path}:3:')
  assert 'nmae' in message


def test_bad_enum_value_names_file_line_and_column(tmp_path):
  path = write(tmp_path, 'model_options {\n  backbone {\n'
               '    activation: SWISH\n  }\n}\n')
  with pytest.raises(config.ConfigError) as error:
    config.load_config(path)
  assert str(error.value).startswith(f'{path}:3:')
  assert 'SWISH' in str(error.value)


def test_syntax_error_names_file_line_and_column(tmp_path):
  path = write(tmp_path, 'experiment_name: "a"\nmodel_options {\n')
  with pytest.raises(config.ConfigError) as error:
    config.load_config(path)
  assert str(error.value).startswith(f'{path}:2:') or str(
      error.value).startswith(f'{path}:3:')


def test_missing_file_is_named(tmp_path):
  path = str(tmp_path / 'nope.textproto')
  with pytest.raises(config.ConfigError, match='nope.textproto'):
    config.load_config(path)


def test_overrides_scalars_enums_bools_strings_and_lists(tmp_path):
  path = write(tmp_path, MINIMAL)
  options = config.load_config(
      path, params={'NAME': 'a', 'TRAIN_SET': 'b'},
      overrides=[
          'trainer_options.solver_options.base_learning_rate=0.0005',
          'model_options.backbone.activation=RELU',
          'model_options.clustering.clustering_update=true',
          'train_dataset_options.file_pattern=x-*,y-*',
          'train_dataset_options.crop_size=65,65',
          'experiment_name=has "quotes"',
          'model_options.decoder.transformer_stages[1].num_blocks=2',
          'model_options.decoder.transformer_stages[2].backbone_stage=4',
      ])
  solver = options.trainer_options.solver_options
  assert solver.base_learning_rate == pytest.approx(5e-4)
  assert options.model_options.backbone.activation == model_pb2.RELU
  assert options.model_options.clustering.clustering_update
  assert list(options.train_dataset_options.file_pattern) == ['x-*', 'y-*']
  assert list(options.train_dataset_options.crop_size) == [65, 65]
  assert options.experiment_name == 'has "quotes"'
  stages = options.model_options.decoder.transformer_stages
  assert [s.num_blocks for s in stages] == [3, 2, 3]
  assert solver.optimizer == trainer_pb2.SolverOptions.ADAM


@pytest.mark.parametrize('override, fragment', [
    ('trainer_options.solver_options.base_lr=1', "no field 'base_lr'"),
    ('model_options.backbone.activation=SWISH', 'SWISH'),
    ('trainer_options.solver_options.warmup_steps=many', 'warmup_steps'),
    ('model_options.backbone=1', 'is a message'),
    ('model_options.decoder.transformer_stages.num_blocks=1', 'index it'),
    ('model_options.decoder.transformer_stages[7].num_blocks=1',
     'past the end'),
    ('experiment_name', 'expected field.path=value'),
    ('experiment_name.x=1', 'not a message'),
])
def test_bad_overrides_name_the_path_or_value(tmp_path, override, fragment):
  message = _error_of_override(tmp_path, override)
  assert fragment in message and override in message


def _error_of_override(tmp_path, override: str) -> str:
  """The ConfigError message of MINIMAL with `override`."""
  path = write(tmp_path, MINIMAL)
  with pytest.raises(config.ConfigError) as error:
    config.load_config(path, params={'NAME': 'a', 'TRAIN_SET': 'b'},
                       overrides=[override])
  return str(error.value)


@pytest.mark.parametrize('override, fragment', [
    ('model_options.clustering.coord_conv=true',
     'coord_conv = True: needs reference_mask'),
    ('model_options.backbone.output_stride=8', 'output_stride = 8'),
    ('train_dataset_options.crop_size=641',
     'crop_size = [641]: needs 2 values'),
    ('model_options.decoder.transformer_stages[0].backbone_stage=3',
     'backbone_stage = 3: must be 4 or 5'),
    ('train_dataset_options.categories_json=cats.json', 'not both'),
    ('model_options.transformer.num_heads=7',
     'memory_channels = 256: must be even with memory_channels / 2 '
     'divisible by num_heads (7)'),
])
def test_cross_field_checks_name_the_field(tmp_path, override, fragment):
  message = _error_of_override(tmp_path, override)
  assert fragment in message and str(tmp_path / 'exp.textproto') in message


def test_parse_params():
  assert config.parse_params(['A=1', 'B=x=y']) == {'A': '1', 'B': 'x=y'}
  with pytest.raises(config.ConfigError, match='NAME=VALUE'):
    config.parse_params(['oops'])

"""Every path a user passes may be a URL: TensorFlow's in-memory `ram://`
file system stands in for gs:// (both go through `tf.io.gfile`'s registry).

`ram://` differs from GCS in ways that the code must not rely on: renaming a
folder loses its content there (on GCS it is a copy), any prefix of a name
counts as a folder (so `tf.train.load_checkpoint` takes a checkpoint prefix
for a folder; checkpoints are read by prefix), and listing folder `x` also
lists `.json` when `x.json` exists.
"""

import json
import os
import uuid

import pytest
import tensorflow as tf

from cmt import atomic_files
from cmt import cli
from cmt.data import synthetic
from cmt.tools import build_data as build_data_tool
from cmt.tools import evaluate as evaluate_main
from cmt.tools import export as export_main
from cmt.tools import paper_tables as paper_tables_tool
from cmt.tools import predict as predict_tool
from cmt.tools import synthetic_data
from cmt.tools import train as train_main
from cmt.trainer import checkpoints
from tests.conftest import REPO_ROOT

DEMO_CONFIG = REPO_ROOT / 'configs' / 'demo' / 'cmt_deeplab_synthetic_cpu.textproto'
# The demo model as small as tests/export/tiny_cmt.textproto, 2 steps at 33.
TINY_RUN = [
    f'--override={field}' for field in (
        'model_options.transformer.num_cluster_centers=8',
        'model_options.heads.semantic_head_channels=8',
        'model_options.heads.aspp_channels=8',
        'model_options.heads.semantic_decoder_channels=8',
        'train_dataset_options.crop_size=33,33',
        'train_dataset_options.min_resize_value=33',
        'train_dataset_options.max_resize_value=33',
        'train_dataset_options.batch_size=2',
        'eval_dataset_options.crop_size=33,33',
        'eval_dataset_options.min_resize_value=33',
        'eval_dataset_options.max_resize_value=33',
        'trainer_options.loss_options.instance_discrimination_loss.'
        'sample_count=32',
        'trainer_options.steps_per_loop=2',
        'trainer_options.save_summaries_steps=2',
        'trainer_options.save_checkpoints_steps=2',
        'trainer_options.solver_options.warmup_steps=1',
        'trainer_options.solver_options.training_number_of_steps=2',
        'evaluator_options.num_summary_images=1')]


@pytest.fixture
def ram_root():
  """A fresh ram:// folder, emptied afterwards."""
  root = f'ram://cmt_paths_{uuid.uuid4().hex[:8]}'
  tf.io.gfile.makedirs(root)
  yield root
  tf.io.gfile.rmtree(root)


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
  """The working directory: it must still be empty at the end."""
  cwd = tmp_path / 'cwd'
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  return cwd


def _listing(folder: str) -> list[str]:
  # Not listdir: on ram:// it also lists `.json` in `x` beside `x.json`.
  return sorted(os.path.basename(path)
                for path in tf.io.gfile.glob(f'{folder}/*'))


def _copy_to(local_folder, url_folder: str, names) -> str:
  tf.io.gfile.makedirs(url_folder)
  for name in names:
    tf.io.gfile.copy(os.path.join(local_folder, name),
                     f'{url_folder}/{name}')
  return url_folder


def _build_records(raw, categories: str, records: str):
  """cmt-build-data: local COCO-format input, shards written to `records`."""
  for split in ('train', 'val'):
    assert build_data_tool.main([
        f'--image_dir={raw}/images/{split}',
        f'--panoptic_json={raw}/panoptic_{split}.json',
        f'--panoptic_dir={raw}/panoptic/{split}',
        f'--categories_json={categories}', f'--output_dir={records}',
        f'--split_name={split}', '--num_shards=2', '--num_workers=1']) == 0


@pytest.mark.slow
def test_train_eval_export_predict_with_every_path_on_ram(
    tmp_path, empty_cwd, ram_root, tiny_checkpoint, capsys):
  raw = tmp_path / 'raw'  # cmt-build-data reads its input locally
  assert synthetic_data.main([f'--output_dir={raw}', '--num_train=4',
                              '--num_val=2', '--image_size=49',
                              '--seed=3']) == 0
  data = _copy_to(raw, f'{ram_root}/data', ['categories.json'])
  categories = f'{data}/categories.json'
  records = f'{ram_root}/records'
  _build_records(raw, categories, records)
  assert len(tf.io.gfile.glob(f'{records}/train-*-of-00002.tfrecord')) == 2
  config = f'{ram_root}/configs/synthetic.textproto'
  tf.io.gfile.makedirs(os.path.dirname(config))
  tf.io.gfile.copy(str(DEMO_CONFIG), config)
  # A checkpoint folder as downloaded: no `checkpoint` file, one prefix.
  initial = _copy_to(tiny_checkpoint, f'{ram_root}/initial', [
      n for n in os.listdir(tiny_checkpoint) if n.startswith('ckpt-')])
  params = [f'--param=TRAIN_SET={records}/train-*',
            f'--param=VAL_SET={records}/val-*',
            f'--param=CATEGORIES_JSON={categories}']
  model_dir = f'{ram_root}/run'
  flags = [f'--config_file={config}', f'--model_dir={model_dir}', *params,
           *TINY_RUN]
  capsys.readouterr()

  assert train_main.main(flags + [
      '--mode=train',
      f'--override=model_options.initial_checkpoint={initial}',
      '--override=model_options.restore_scope=BACKBONE']) == 0
  out = capsys.readouterr().out
  assert (f'initial_checkpoint {initial}/ckpt-1 (restore_scope BACKBONE): '
          'restored') in out
  assert tf.io.gfile.exists(f'{model_dir}/ckpt-2.index')

  assert train_main.main(flags + [
      '--mode=eval', '--override=evaluator_options.save_predictions=true']
                         ) == 0
  metrics = json.loads(tf.io.gfile.GFile(
      f'{model_dir}/eval/metrics.json').read())
  assert metrics['step'] == 2 and metrics['metrics']['num_images'] == 2
  predictions = f'{model_dir}/eval/predictions'
  saved = json.loads(tf.io.gfile.GFile(f'{predictions}/panoptic.json').read())
  assert len(saved['annotations']) == 2
  assert _listing(f'{predictions}/panoptic') == sorted(
      a['file_name'] for a in saved['annotations'])

  saved_model = f'{ram_root}/export/saved_model'
  assert export_main.main([f'--config_file={config}',
                           f'--checkpoint_path={model_dir}',
                           f'--output_path={saved_model}', *params,
                           *TINY_RUN]) == 0
  assert 'saved_model.pb' in _listing(saved_model)
  assert _listing(f'{ram_root}/export') == ['saved_model']  # no temporary

  images = _copy_to(raw / 'images' / 'val', f'{ram_root}/images',
                    sorted(os.listdir(raw / 'images' / 'val')))
  outputs = f'{ram_root}/predictions'
  assert predict_tool.main([f'--model={saved_model}', f'--input={images}',
                            f'--output_dir={outputs}', '--no_progress']) == 0
  assert '2 of 2 image(s) predicted' in capsys.readouterr().out
  for folder in ('overlay', 'panoptic', 'segments'):
    assert len(_listing(f'{outputs}/{folder}')) == 2, folder
  assert 'panoptic.json' in _listing(outputs)

  assert not list(empty_cwd.iterdir())
  assert not [p for p in tmp_path.rglob('ram:*')]


def test_a_model_dir_that_is_a_file_is_refused_in_one_line(
    tmp_path, ram_root, capsys):
  local_file = tmp_path / 'model_dir'
  local_file.write_text('not a folder')
  url_file = f'{ram_root}/model_dir'
  with tf.io.gfile.GFile(url_file, 'w') as f:
    f.write('not a folder')
  for model_dir in (str(local_file), url_file):
    assert train_main.main([
        f'--config_file={DEMO_CONFIG}', f'--model_dir={model_dir}',
        '--param=TRAIN_SET=t', '--param=VAL_SET=v',
        '--param=CATEGORIES_JSON=c']) == 1
    err = capsys.readouterr().err
    assert err == (f'cmt-train: error: --model_dir={model_dir}: is a file; '
                   'give a folder (it is created if missing)\n')


@pytest.mark.parametrize('main, argv, flag', [
    (evaluate_main.main, ['--gt_json=gs://b/gt.json', '--gt_folder=gt',
                          '--pred_json=p.json', '--pred_folder=p'],
     '--gt_json'),
    (evaluate_main.main, ['--gt_json=gt.json', '--gt_folder=gt',
                          '--pred_json=p.json', '--pred_folder=gs://b/p'],
     '--pred_folder'),
    (synthetic_data.main, ['--output_dir=gs://b/synthetic'], '--output_dir'),
    (build_data_tool.main, ['--image_dir=gs://b/images',
                            '--panoptic_json=p.json', '--panoptic_dir=p',
                            '--output_dir=gs://b/records'],
     '--image_dir'),
    (paper_tables_tool.main, ['--runs=gs://b/runs'], '--runs'),
], ids=['evaluate-gt', 'evaluate-pred', 'synthetic', 'build-data',
        'paper-tables'])
def test_a_local_only_tool_refuses_a_url_in_one_line(
    main, argv, flag, empty_cwd, capsys):
  assert main(argv) == cli.EXIT_USAGE
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'Traceback' not in err
  assert f'argument {flag}: gs://b/' in err
  assert 'reads and writes local files only' in err
  assert not list(empty_cwd.iterdir())  # no folder named gs:


def test_open_atomic_and_atomic_directory_on_an_object_store(ram_root):
  with atomic_files.open_atomic(f'{ram_root}/a/b.json') as f:
    f.write('{}')
  assert _listing(f'{ram_root}/a') == ['b.json']
  with pytest.raises(RuntimeError):
    with atomic_files.open_atomic(f'{ram_root}/a/c.json') as f:
      f.write('half')
      raise RuntimeError('interrupted')
  assert _listing(f'{ram_root}/a') == ['b.json']  # nothing half-written

  target = f'{ram_root}/model'
  for version in ('1', '2'):
    with atomic_files.atomic_directory(target, overwrite=True,
                                       last_file='done') as temporary:
      tf.io.gfile.makedirs(f'{temporary}/sub')
      with tf.io.gfile.GFile(f'{temporary}/sub/data', 'w') as f:
        f.write(version)
      with tf.io.gfile.GFile(f'{temporary}/done', 'w') as f:
        f.write('')
    assert _listing(ram_root) == ['a', 'model']  # the temporary is gone
    assert tf.io.gfile.GFile(f'{target}/sub/data').read() == version
  with pytest.raises(FileExistsError, match='pass --overwrite'):
    with atomic_files.atomic_directory(target):
      pass


def test_a_checkpoint_folder_without_its_checkpoint_file(ram_root):
  folder = f'{ram_root}/downloaded'
  tf.io.gfile.makedirs(folder)
  for name in ('ckpt-9.index', 'ckpt-10.index', 'ckpt-10.data-00000-of-00001'):
    with tf.io.gfile.GFile(f'{folder}/{name}', 'w') as f:
      f.write('')
  assert checkpoints.resolve_checkpoint(folder, 'F') == f'{folder}/ckpt-10'
  with tf.io.gfile.GFile(f'{folder}/model.index', 'w') as f:
    f.write('')
  with pytest.raises(ValueError, match='several checkpoints'):
    checkpoints.resolve_checkpoint(folder, 'F')

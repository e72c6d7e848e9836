"""Every console script under the rule of `cmt.cli`.

A table of malformed arguments and missing / unreadable / corrupt inputs for
each script. Each case asserts the exit status, exactly one line on stderr
naming the culprit, no traceback, and the output location untouched (when
it existed) or absent. Most cases call the script's `main` in-process (the
same decorated function the console script runs); one case per script runs
the installed console script as a subprocess.
"""

import dataclasses
import hashlib
import importlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Callable, Optional

import pytest

from cmt import cli
from cmt.data import synthetic
from cmt.tools import commands
from tests.conftest import REPO_ROOT
from tests.conftest import TINY_CONFIG

DEMO_CONFIG = REPO_ROOT / 'configs' / 'demo' / 'cmt_deeplab_synthetic_cpu.textproto'


def _main_of(script: str) -> Callable:
  return importlib.import_module(commands.module_of(script)).main


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> dict:
  """Bad and good inputs, made once (no TensorFlow)."""
  root = tmp_path_factory.mktemp('cli_rule')
  made = {'root': root}
  typo = root / 'typo.textproto'
  typo.write_text('trainer_options { solver_options { base_learning_rat: 1 '
                  '} }\n')
  made['typo'] = typo
  binary = root / 'binary.textproto'
  binary.write_bytes(bytes(range(256)) * 4)
  made['binary'] = binary
  not_json = root / 'not_json.json'
  not_json.write_text('{"images": [')
  made['not_json'] = not_json
  not_image = root / 'not_image.png'
  not_image.write_text('this is text, not a PNG')
  made['not_image'] = not_image
  # A small real dataset in COCO panoptic format.
  dataset = root / 'dataset'
  synthetic.write_dataset(str(dataset), num_train=0, num_val=2,
                          image_size=(48, 48), seed=1)
  made['dataset'] = dataset
  # A SavedModel folder whose saved_model.pb is garbage.
  broken_model = root / 'broken_saved_model'
  broken_model.mkdir()
  (broken_model / 'saved_model.pb').write_bytes(b'\x00garbage' * 50)
  made['broken_model'] = broken_model
  # Two images with the same stem: their outputs would collide.
  same_stem = root / 'same_stem'
  same_stem.mkdir()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for extension in ('jpg', 'png'):
    Image.new('RGB', (8, 8)).save(same_stem / f'x.{extension}')
  made['same_stem'] = same_stem
  one_image = root / 'one_image'
  one_image.mkdir()
  Image.new('RGB', (8, 8)).save(one_image / 'a.png')
  made['one_image'] = one_image
  runs = root / 'runs' / 'run1' / 'eval'
  runs.mkdir(parents=True)
  (runs / 'metrics.json').write_text('{"step": ')
  made['bad_runs'] = root / 'runs'
  return made


@dataclasses.dataclass
class Case:
  script: str
  name: str
  # files -> (argv, output location or None, culprit text)
  make: Callable[[dict, pathlib.Path], tuple]
  status: int = 1
  # Existing output content to leave untouched (created before the run).
  existing: Optional[Callable[[pathlib.Path], None]] = None
  subprocess: bool = False


def _data_flags(f, split='val', **changes):
  flags = {'image_dir': f['dataset'] / 'images' / split,
           'panoptic_json': f['dataset'] / f'panoptic_{split}.json',
           'panoptic_dir': f['dataset'] / 'panoptic' / split,
           'categories_json': f['dataset'] / 'categories.json'}
  flags.update(changes)
  return [f'--{k}={v}' for k, v in flags.items()]


def _gt_flags(f, **changes):
  flags = {'gt_json': f['dataset'] / 'panoptic_val.json',
           'gt_folder': f['dataset'] / 'panoptic' / 'val',
           'pred_json': f['dataset'] / 'panoptic_val.json',
           'pred_folder': f['dataset'] / 'panoptic' / 'val'}
  flags.update(changes)
  return [f'--{k}={v}' for k, v in flags.items()]


def _write(relative: str, text: str = 'mine'):
  def create(out: pathlib.Path):
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  return create


def _model_flags(checkpoint):
  return [f'--config_file={TINY_CONFIG}', f'--checkpoint_path={checkpoint}']


CASES = [
    # ---- cmt-config
    Case('cmt-config', 'typo', lambda f, o: (
        ['validate', str(f['typo'])], None, 'base_learning_rat'),
         subprocess=True),
    Case('cmt-config', 'missing', lambda f, o: (
        ['print', str(o / 'nope.textproto')], None, 'nope.textproto')),
    Case('cmt-config', 'binary', lambda f, o: (
        ['validate', str(f['binary'])], None, 'binary.textproto')),
    Case('cmt-config', 'directory as config', lambda f, o: (
        ['validate', str(f['root'])], None, str(f['root']))),
    Case('cmt-config', 'param without =', lambda f, o: (
        ['print', str(DEMO_CONFIG), '--param', 'NOEQUALS'], None,
        'NOEQUALS')),
    Case('cmt-config', 'bad override', lambda f, o: (
        ['print', str(DEMO_CONFIG), '--param', 'TRAIN_SET=a', '--param',
         'VAL_SET=b', '--param', 'CATEGORIES_JSON=c', '--override',
         'model_options.nope=1'], None, 'nope')),
    Case('cmt-config', 'unknown subcommand', lambda f, o: (
        ['frobnicate'], None, 'frobnicate'), status=2),
    Case('cmt-config', 'params of a missing file', lambda f, o: (
        ['params', str(o / 'gone.textproto')], None, 'gone.textproto')),
    # ---- cmt-synthetic-data
    Case('cmt-synthetic-data', 'negative count', lambda f, o: (
        [f'--output_dir={o}', '--num_train=-1'], o, '--num_train'),
         status=2, subprocess=True),
    Case('cmt-synthetic-data', 'not a number', lambda f, o: (
        [f'--output_dir={o}', '--image_size=big'], o, 'big'), status=2),
    Case('cmt-synthetic-data', 'existing output', lambda f, o: (
        [f'--output_dir={o}', '--num_train=1', '--num_val=0',
         '--image_size=48'], o, str(o)), existing=_write('keep.txt')),
    Case('cmt-synthetic-data', 'output under a file', lambda f, o: (
        [f'--output_dir={f["typo"]}/sub', '--num_train=1', '--num_val=0',
         '--image_size=48'], None, 'typo.textproto')),
    # ---- cmt-build-data
    Case('cmt-build-data', 'missing image_dir', lambda f, o: (
        _data_flags(f, image_dir=o / 'no_images') + [f'--output_dir={o}'],
        o, 'no_images'), subprocess=True),
    Case('cmt-build-data', 'corrupt json', lambda f, o: (
        _data_flags(f, panoptic_json=f['not_json']) + [f'--output_dir={o}'],
        o, 'not_json.json')),
    Case('cmt-build-data', 'zero shards', lambda f, o: (
        _data_flags(f) + [f'--output_dir={o}', '--num_shards=0'], o,
        '--num_shards')),
    Case('cmt-build-data', 'existing shard', lambda f, o: (
        _data_flags(f) + [f'--output_dir={o}', '--num_shards=1',
                          '--num_workers=1'], o,
        'val-00000-of-00001.tfrecord'),
         existing=_write('val-00000-of-00001.tfrecord')),
    Case('cmt-build-data', 'corrupt categories', lambda f, o: (
        _data_flags(f, categories_json=f['not_json']) + [f'--output_dir={o}'],
        o, 'not_json.json')),
    # ---- cmt-train
    Case('cmt-train', 'extra positional', lambda f, o: (
        ['stray', f'--config_file={DEMO_CONFIG}', f'--model_dir={o}'], o,
        'stray'), status=2, subprocess=True),
    Case('cmt-train', 'missing model_dir', lambda f, o: (
        [f'--config_file={DEMO_CONFIG}'], None, '--model_dir'), status=2),
    Case('cmt-train', 'unknown mode', lambda f, o: (
        [f'--config_file={DEMO_CONFIG}', f'--model_dir={o}', '--mode=fly'],
        o, 'fly'), status=2),
    Case('cmt-train', 'typo in config', lambda f, o: (
        [f'--config_file={f["typo"]}', f'--model_dir={o}'], o,
        'base_learning_rat')),
    Case('cmt-train', 'missing config', lambda f, o: (
        [f'--config_file={o}.textproto', f'--model_dir={o}'], o,
        f'{o}.textproto')),
    Case('cmt-train', 'unfilled placeholder', lambda f, o: (
        [f'--config_file={DEMO_CONFIG}', f'--model_dir={o}'], o,
        '${TRAIN_SET}')),
    Case('cmt-train', 'bad num_gpus', lambda f, o: (
        [f'--config_file={DEMO_CONFIG}', f'--model_dir={o}',
         '--num_gpus=two'], o, 'two'), status=2),
    # ---- cmt-evaluate
    Case('cmt-evaluate', 'missing gt', lambda f, o: (
        _gt_flags(f, gt_json=o.parent / 'missing_gt.json') +
        [f'--output_json={o}'], o, 'missing_gt.json'), subprocess=True),
    Case('cmt-evaluate', 'corrupt predictions', lambda f, o: (
        _gt_flags(f, pred_json=f['not_json']) + [f'--output_json={o}'], o,
        'not_json.json')),
    Case('cmt-evaluate', 'existing output', lambda f, o: (
        _gt_flags(f) + [f'--output_json={o / "metrics.json"}'], o,
        'metrics.json'), existing=_write('metrics.json')),
    Case('cmt-evaluate', 'workers not a number', lambda f, o: (
        _gt_flags(f) + ['--workers=many'], None, 'many'), status=2),
    # ---- cmt-export
    Case('cmt-export', 'existing output', lambda f, o: (
        _model_flags(o / 'no_checkpoint') + [f'--output_path={o}'], o,
        str(o)), existing=_write('saved_model.pb'), subprocess=True),
    Case('cmt-export', 'missing checkpoint', lambda f, o: (
        _model_flags(o.parent / 'no_checkpoint') + [f'--output_path={o}'], o,
        'no_checkpoint')),
    Case('cmt-export', 'config typo', lambda f, o: (
        [f'--config_file={f["typo"]}', f'--checkpoint_path={o}',
         f'--output_path={o}'], o, 'base_learning_rat')),
    Case('cmt-export', 'missing output flag', lambda f, o: (
        _model_flags(o), None, '--output_path'), status=2),
    # ---- cmt-predict
    Case('cmt-predict', 'no image', lambda f, o: (
        ['--model=unused', f'--input={o.parent / "none*.jpg"}',
         f'--output_dir={o}'], o, 'none*.jpg'), subprocess=True),
    Case('cmt-predict', 'same stem', lambda f, o: (
        ['--model=unused', f'--input={f["same_stem"]}', f'--output_dir={o}'],
        o, "'x'")),
    Case('cmt-predict', 'not a saved model', lambda f, o: (
        [f'--model={f["root"]}', f'--input={f["one_image"]}',
         f'--output_dir={o}', '--no_progress'], o, str(f['root']))),
    Case('cmt-predict', 'corrupt saved model', lambda f, o: (
        [f'--model={f["broken_model"]}', f'--input={f["one_image"]}',
         f'--output_dir={o}', '--no_progress'], o, 'broken_saved_model')),
    Case('cmt-predict', 'existing outputs', lambda f, o: (
        ['--model=unused', f'--input={f["one_image"]}', f'--output_dir={o}'],
        o, 'a.png'), existing=_write('overlay/a.png')),
    Case('cmt-predict', 'model and config', lambda f, o: (
        ['--model=m', f'--config_file={DEMO_CONFIG}', '--input=x',
         f'--output_dir={o}'], o, '--model'), status=2),
    # ---- cmt-visualize
    Case('cmt-visualize', 'missing image', lambda f, o: (
        _model_flags(o) + [f'--input={o.parent / "gone.png"}',
                           f'--output_dir={o}'], o, 'gone.png'),
         subprocess=True),
    Case('cmt-visualize', 'corrupt image', lambda f, o: (
        _model_flags(o) + [f'--input={f["not_image"]}', f'--output_dir={o}'],
        o, 'not_image.png')),
    Case('cmt-visualize', 'missing checkpoint', lambda f, o: (
        _model_flags(o.parent / 'no_ckpt') + [
            f'--input={f["one_image"] / "a.png"}', f'--output_dir={o}'], o,
        'no_ckpt')),
    Case('cmt-visualize', 'existing figure', lambda f, o: (
        _model_flags(o) + [f'--input={f["one_image"] / "a.png"}',
                           f'--output_dir={o}'], o, 'a_fig5_clustering.png'),
         existing=_write('a_fig5_clustering.png')),
    # ---- cmt-import-deeplab2
    Case('cmt-import-deeplab2', 'missing checkpoint', lambda f, o: (
        [f'--deeplab2_checkpoint={o.parent / "no_deeplab2"}',
         f'--config_file={TINY_CONFIG}', f'--output_dir={o}'], o,
        'no_deeplab2'), subprocess=True),
    Case('cmt-import-deeplab2', 'config typo', lambda f, o: (
        [f'--deeplab2_checkpoint={o}', f'--config_file={f["typo"]}',
         f'--output_dir={o}'], o, 'base_learning_rat')),
    Case('cmt-import-deeplab2', 'occupied output', lambda f, o: (
        [f'--deeplab2_checkpoint={o.parent / "no_deeplab2"}',
         f'--config_file={TINY_CONFIG}', f'--output_dir={o}'], o,
        str(o)), existing=_write('mine.txt')),
    Case('cmt-import-deeplab2', 'missing output flag', lambda f, o: (
        [f'--config_file={TINY_CONFIG}', '--deeplab2_checkpoint=x'], None,
        '--output_dir'), status=2),
    # ---- cmt-paper-tables
    Case('cmt-paper-tables', 'unknown table', lambda f, o: (
        ['--tables=9z'], None, '9z'), status=2, subprocess=True),
    Case('cmt-paper-tables', 'missing configs root', lambda f, o: (
        [f'--configs_root={o / "no_configs"}'], None, 'no_configs')),
    Case('cmt-paper-tables', 'corrupt metrics', lambda f, o: (
        [f'--runs={f["bad_runs"]}', '--tables=1'], None, 'metrics.json')),
    # ---- cmt-ablate
    Case('cmt-ablate', 'steps not a number', lambda f, o: (
        [f'--output_dir={o}', '--steps=many'], o, 'many'), status=2,
         subprocess=True),
    Case('cmt-ablate', 'unknown row', lambda f, o: (
        [f'--output_dir={o}', '--rows=baseline,nope'], o, "'nope'")),
    Case('cmt-ablate', 'crop rule', lambda f, o: (
        [f'--output_dir={o}', '--image_size=100'], o, '--image_size=100')),
    Case('cmt-ablate', 'missing config', lambda f, o: (
        [f'--output_dir={o}', f'--config_file={o.parent / "gone.textproto"}'],
        o, 'gone.textproto')),
    Case('cmt-ablate', 'foreign output', lambda f, o: (
        [f'--output_dir={o}', '--quick'], o, str(o)),
         existing=_write('mine.txt')),
    # ---- cmt-demo
    Case('cmt-demo', 'missing config', lambda f, o: (
        [f'--output_dir={o}', f'--config_file={o.parent / "gone.textproto"}'],
        o, 'gone.textproto'), status=2, subprocess=True),
    Case('cmt-demo', 'nothing to predict', lambda f, o: (
        [f'--output_dir={o}', '--num_predict=0'], o, '--num_predict=0'),
         status=2),
]


def _snapshot(path: pathlib.Path):
  """Content of every file under `path` (None if absent)."""
  if not path.exists():
    return None
  if path.is_file():
    return hashlib.sha256(path.read_bytes()).hexdigest()
  return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes())
                                     .hexdigest() if p.is_file() else 'dir')
          for p in sorted(path.rglob('*'))}


def _check_rule(case: Case, status: int, stderr: str, culprit: str):
  lines = [line for line in stderr.splitlines() if line.strip()]
  assert status == case.status, stderr
  assert 'Traceback' not in stderr, stderr
  assert len(lines) == 1, f'expected one error line, got:\n{stderr}'
  assert lines[0].startswith(f'{case.script}: '), lines[0]
  assert culprit in lines[0], (culprit, lines[0])


@pytest.mark.parametrize('case', CASES, ids=lambda c: f'{c.script}:{c.name}')
def test_bad_input_gives_one_line_and_leaves_output_alone(case, files,
                                                          tmp_path, capfd):
  out = tmp_path / 'out'
  if case.existing:
    out.mkdir()
    case.existing(out)
  argv, output, culprit = case.make(files, out)
  before = _snapshot(out)
  if case.subprocess:
    script = pathlib.Path(sys.executable).parent / case.script
    env = {k: v for k, v in os.environ.items() if k != cli.DEBUG_ENV}
    result = subprocess.run([str(script), *argv], capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    status, stderr = result.returncode, result.stderr
  else:
    status = _main_of(case.script)(argv)
    stderr = capfd.readouterr().err
  _check_rule(case, status, stderr, culprit)
  if output is not None:
    after = _snapshot(out)
    assert after == before, f'{out} changed: {before} -> {after}'
  # Nothing temporary left beside the output either.
  assert not [p for p in tmp_path.rglob('*') if '.tmp-' in p.name]


def test_every_console_script_is_in_the_table(repo_root):
  """Each command of `cmt.tools.commands` has cases here, one of them run as
  the installed console script; setup.py installs exactly that list."""
  covered = {c.script for c in CASES}
  assert set(commands.COMMANDS) == covered, set(commands.COMMANDS) ^ covered
  assert {c.script for c in CASES if c.subprocess} == covered
  assert 'commands.py' in (repo_root / 'setup.py').read_text()


def test_evaluate_output_json_is_written_when_complete(files, tmp_path):
  from cmt.tools import evaluate as evaluate_main  # pylint: disable=g-import-not-at-top
  output = tmp_path / 'metrics.json'
  assert evaluate_main.main(_gt_flags(files) + [
      f'--output_json={output}']) == 0
  assert json.loads(output.read_text())['num_images'] == 2
  assert evaluate_main.main(_gt_flags(files) + [
      f'--output_json={output}', '--overwrite']) == 0
  assert os.listdir(tmp_path) == ['metrics.json']

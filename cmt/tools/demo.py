"""`cmt-demo` (`make demo`): the whole pipeline on the synthetic dataset, on
CPU.

    cmt-demo --output_dir=demo_output [--quick]
        [--config_file=configs/demo/cmt_deeplab_demo.textproto]
        [--override field.path=value ...]

Runs, in order, each step through the project's own command-line tools
(their `main(argv)` for the light ones, the installed console scripts as
child processes for the TensorFlow-heavy ones) and stops at the first step
that fails, with its error:

  1. `cmt-synthetic-data`  OUT/synthetic      (images, PNGs, COCO JSON)
  2. `cmt-build-data`      OUT/synthetic/tfrecords  (train-*, val-*)
  3. `cmt-train --mode=train`  OUT/run        (checkpoints, TensorBoard)
  4. `cmt-train --mode=eval`   OUT/run/eval/metrics.json, on the VALIDATION
                               split (images the model never trained on)
  5. `cmt-export`          OUT/saved_model
  6. `cmt-predict`         OUT/predictions    (a few validation images)

then prints where everything went and the All / Things / Stuff PQ table.
`--quick` shrinks the data and the schedule to seconds (the test uses it;
its PQ means nothing).
"""

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Optional, Sequence

from cmt import cli
from cmt import config as config_lib
from cmt.tools import flags

# configs/ of the checkout, or cmt/configs of an installed wheel.
CONFIGS = pathlib.Path(__file__).resolve().parent.parent.parent / 'configs'
if not CONFIGS.is_dir():
  CONFIGS = pathlib.Path(__file__).resolve().parent.parent / 'configs'
DEFAULT_CONFIG = CONFIGS / 'demo' / 'cmt_deeplab_demo.textproto'


@dataclasses.dataclass(frozen=True)
class DataSize:
  """How much synthetic data to write (`cmt-synthetic-data` flags)."""
  num_train: int
  num_val: int
  image_size: int


FULL_DATA = DataSize(num_train=400, num_val=50, image_size=65)
QUICK_DATA = DataSize(num_train=8, num_val=4, image_size=65)
# --quick: a handful of steps, enough to run every step once.
QUICK_OVERRIDES = (
    'trainer_options.solver_options.training_number_of_steps=4',
    'trainer_options.solver_options.warmup_steps=1',
    'trainer_options.steps_per_loop=2',
    'trainer_options.save_checkpoints_steps=4',
    'trainer_options.save_summaries_steps=2',
)


class StepError(ValueError):
  """A demo step that failed; the message names the step."""


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where each step writes, under the demo's output folder."""
  root: pathlib.Path

  @property
  def synthetic(self) -> pathlib.Path:
    return self.root / 'synthetic'

  @property
  def tfrecords(self) -> pathlib.Path:
    return self.synthetic / 'tfrecords'

  @property
  def model_dir(self) -> pathlib.Path:
    return self.root / 'run'

  @property
  def metrics_json(self) -> pathlib.Path:
    return self.model_dir / 'eval' / 'metrics.json'

  @property
  def saved_model(self) -> pathlib.Path:
    return self.root / 'saved_model'

  @property
  def predictions(self) -> pathlib.Path:
    return self.root / 'predictions'

  def dataset_params(self) -> list[str]:
    """The `--param` values the demo config's ${...} placeholders need."""
    return [f'TRAIN_SET={self.tfrecords / "train-*"}',
            f'VAL_SET={self.tfrecords / "val-*"}',
            f'CATEGORIES_JSON={self.synthetic / "categories.json"}']


class Demo:
  """Runs the steps in order, timing each one."""

  def __init__(self, layout: Layout, config_file: pathlib.Path,
               overrides: Sequence[str], params: Sequence[str],
               data: DataSize, num_predict: int):
    self.layout = layout
    self.config_file = config_file
    self.overrides = list(overrides)
    self.params = list(params)
    self.data = data
    self.num_predict = num_predict
    self.timings: list[tuple[str, float]] = []
    self._count = 0

  def _header(self, title: str):
    self._count += 1
    print(f'\n=== [{self._count}] {title}', flush=True)

  def _timed(self, title: str, function):
    self._header(title)
    start = time.perf_counter()
    function()
    seconds = time.perf_counter() - start
    self.timings.append((title, seconds))
    print(f'--- done in {seconds:.1f} s', flush=True)

  def _config_args(self) -> list[str]:
    args = [f'--config_file={self.config_file}']
    args += [f'--param={p}'
             for p in self.layout.dataset_params() + self.params]
    args += [f'--override={o}' for o in self.overrides]
    return args

  # The steps -----------------------------------------------------------

  def synthetic_data(self):
    from cmt.tools import synthetic_data  # pylint: disable=g-import-not-at-top
    _check(synthetic_data.main([
        f'--output_dir={self.layout.synthetic}',
        f'--num_train={self.data.num_train}',
        f'--num_val={self.data.num_val}',
        f'--image_size={self.data.image_size}', '--overwrite']),
           'cmt-synthetic-data')

  def build_data(self):
    # pylint: disable=g-import-not-at-top
    from cmt.data import synthetic
    from cmt.tools import build_data
    for split in ('train', 'val'):
      print(f'converting the {split} split', flush=True)
      _check(build_data.main(
          synthetic.build_data_args(str(self.layout.synthetic), split,
                                    str(self.layout.tfrecords)) +
          ['--num_shards=2', '--num_workers=1', '--overwrite']),
             'cmt-build-data')

  def train(self):
    _run_tool('cmt-train', self._config_args() + [
        '--mode=train', f'--model_dir={self.layout.model_dir}'])

  def evaluate(self):
    _run_tool('cmt-train', self._config_args() + [
        '--mode=eval', f'--model_dir={self.layout.model_dir}'])
    if not self.layout.metrics_json.is_file():
      raise StepError(f'cmt-train --mode=eval wrote no '
                      f'{self.layout.metrics_json}')

  def export(self):
    _run_tool('cmt-export', self._config_args() + [
        f'--checkpoint_path={self.layout.model_dir}',
        f'--output_path={self.layout.saved_model}', '--overwrite'])

  def predict(self):
    val_images = sorted((self.layout.synthetic / 'images' / 'val').glob('*'))
    inputs = self.layout.root / 'predict_inputs'
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    for image in val_images[:self.num_predict]:
      shutil.copy(image, inputs / image.name)
    _run_tool('cmt-predict', [
        f'--model={self.layout.saved_model}', f'--input={inputs}',
        f'--output_dir={self.layout.predictions}', '--no_progress',
        '--overwrite'])

  def run(self) -> dict:
    """All steps; returns the evaluation's metrics.json content."""
    self._timed('Synthetic dataset (cmt-synthetic-data)', self.synthetic_data)
    self._timed('Conversion to TFRecords (cmt-build-data)', self.build_data)
    self._timed(f'Training {self.config_file.name} on CPU (cmt-train)',
                self.train)
    self._timed('Evaluation on the synthetic validation split '
                '(cmt-train --mode=eval)', self.evaluate)
    self._timed('Export to a SavedModel (cmt-export)', self.export)
    self._timed(f'Prediction on {self.num_predict} validation images '
                '(cmt-predict)', self.predict)
    with open(self.layout.metrics_json, encoding='utf-8') as f:
      return json.load(f)


def _check(status: int, tool: str):
  if status != 0:
    raise StepError(f'{tool} exited with status {status}')


def _tool_command(tool: str) -> list[str]:
  """The console script next to this interpreter (the venv's), else PATH."""
  beside = pathlib.Path(sys.executable).parent / tool
  if beside.exists():
    return [str(beside)]
  found = shutil.which(tool)
  if found is None:
    raise StepError(f'{tool} is not installed (pip install -e . registers '
                    'it)')
  return [found]


def _run_tool(tool: str, args: Sequence[str]):
  """Runs a console script as a child process, its output shown live."""
  command = _tool_command(tool) + list(args)
  print('$ ' + ' '.join([tool] + list(args)), flush=True)
  environment = dict(os.environ)
  environment.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # no C++ info lines
  status = subprocess.run(command, env=environment, check=False).returncode
  _check(status, tool)


def format_pq_table(metrics: dict) -> str:
  """The All / Things / Stuff table (PQ, SQ, RQ in %, number of classes)."""
  from cmt.evaluation import offline_evaluation  # pylint: disable=g-import-not-at-top
  return offline_evaluation.format_table(metrics)


def summary(layout: Layout, demo: Demo, content: dict, seconds: float) -> str:
  lines = ['', '=== Summary', f'total {seconds / 60:.1f} min:']
  lines += [f'  {seconds_:7.1f} s  {title}' for title, seconds_ in
            demo.timings]
  places = [('synthetic dataset', layout.synthetic),
            ('TFRecords', layout.tfrecords),
            ('checkpoints + TensorBoard', layout.model_dir),
            ('evaluation metrics', layout.metrics_json),
            ('SavedModel', layout.saved_model),
            ('predictions (overlay/, panoptic/, segments/)',
             layout.predictions)]
  lines.append('outputs:')
  lines += [f'  {name:46s} {path}' for name, path in places if path.exists()]
  lines.append(f'\nPanoptic quality of {content["experiment_name"]} at step '
               f'{content["step"]} on the synthetic validation split:')
  lines.append(format_pq_table(content['metrics']))
  lines.append(f'\nTensorBoard: tensorboard --logdir={layout.model_dir}')
  lines.append(f'Paper tables: cmt-paper-tables --runs={layout.root}')
  return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(prog='cmt-demo', description=__doc__)
  parser.add_argument('--output_dir', default='demo_output')
  parser.add_argument('--config_file', default=str(DEFAULT_CONFIG))
  config_lib.add_config_flags(parser)
  parser.add_argument('--quick', action='store_true',
                      help='tiny data and 4 training steps (a smoke test)')
  parser.add_argument('--num_predict', type=int, default=4,
                      help='validation images given to cmt-predict')
  return parser


@cli.command('cmt-demo')
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  config_file = pathlib.Path(args.config_file).resolve()
  if not config_file.is_file():
    parser.error(f'--config_file={config_file}: no such file')
  if args.num_predict < 1:
    parser.error(f'--num_predict={args.num_predict}: must be >= 1')
  layout = Layout(pathlib.Path(args.output_dir).resolve())
  if layout.model_dir.exists():
    # A fresh run each time: an old checkpoint would otherwise be resumed.
    shutil.rmtree(layout.model_dir)
  overrides = (list(QUICK_OVERRIDES) if args.quick else []) + args.override
  demo = Demo(layout, config_file, overrides, args.param,
              QUICK_DATA if args.quick else FULL_DATA, args.num_predict)
  start = time.perf_counter()
  try:
    content = demo.run()
  except StepError as error:
    raise StepError(f'{error}; stopped') from None
  print(summary(layout, demo, content, time.perf_counter() - start))
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

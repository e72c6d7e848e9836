"""`cmt-train`: train and/or evaluate an experiment config (DeepLab2's flags).

    cmt-train --config_file=F --mode={train,eval,train_and_eval,continuous_eval}
        --model_dir=D [--master=TPU] [--num_gpus=N]
        [--param NAME=VALUE ...] [--override field.path=value ...]

Re-running the same command resumes from the last complete checkpoint in
--model_dir.
"""

import argparse
import contextlib
import io
import logging as std_logging
import sys
from typing import Optional, Sequence, TextIO

from cmt import cli
from cmt import config as config_lib
from cmt import config_checks
from cmt.tools import flags


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(prog='cmt-train', description=__doc__)
  # absl's help flags, which DeepLab2 users type, show the same help.
  parser.add_argument('--helpshort', '--helpfull', action='help',
                      help=argparse.SUPPRESS)
  parser.add_argument('--config_file', required=True,
                      help='experiment textproto')
  parser.add_argument('--mode', default='train',
                      choices=config_checks.MODES,
                      help='what to run (default: %(default)s)')
  parser.add_argument('--model_dir', required=True,
                      help='checkpoints, TensorBoard events (train/, eval/) '
                      'and eval/metrics.json go here; a GCS path on Cloud TPU')
  parser.add_argument('--master', default='',
                      help="TPU name or grpc:// address; 'local': this TPU "
                      "VM's TPU; 'cpu': no TPU even where one is visible; "
                      'empty: no TPU (refused where a TPU is visible)')
  parser.add_argument('--num_gpus', type=int, default=0,
                      help='GPUs to mirror over (>= 2 to mirror)')
  config_lib.add_config_flags(parser)
  return parser


@cli.command('cmt-train')
def main(argv: Optional[Sequence[str]] = None) -> int:
  """Parses `argv` (default: sys.argv[1:]) and runs; returns the exit status.
  Bad input raises (reported by `cli`)."""
  args = build_parser().parse_args(argv)
  if args.num_gpus < 0:
    raise ValueError(f'--num_gpus={args.num_gpus}: must be >= 0')
  options = config_lib.load_config(
      args.config_file, params=config_lib.parse_params(args.param),
      overrides=args.override,
      purposes=config_checks.MODE_PURPOSES[args.mode])
  from absl import logging  # pylint: disable=g-import-not-at-top
  _check_model_dir(args.model_dir)
  logging.set_verbosity(logging.INFO)
  with _console(sys.stdout, sys.stderr):
    _run(args, options)
  return 0


def _run(args, options):
  """Runs --mode with the strategy of --master / --num_gpus."""
  # pylint: disable=g-import-not-at-top
  from absl import logging
  from cmt.trainer import strategy as strategy_lib
  from cmt.trainer import train_lib
  from cmt.trainer import trainer as trainer_lib
  console = sys.stdout  # before Orbit's prints are discarded
  strategy = strategy_lib.create_strategy(args.master, args.num_gpus)
  train_batch = None
  if args.mode in ('train', 'train_and_eval'):
    train_batch = options.train_dataset_options.batch_size
    strategy_lib.per_replica_batch(strategy, train_batch,
                                   'train_dataset_options.batch_size')
  logging.info('%s', strategy_lib.describe(strategy, train_batch))
  try:
    with contextlib.redirect_stdout(_Discard()):  # Orbit's printed copies
      train_lib.run_experiment(
          args.mode, options, args.model_dir, strategy,
          config_file=args.config_file,
          print_fn=lambda line: print(line, file=console, flush=True))
  except trainer_lib.NonFiniteLossError as error:
    raise ValueError(str(error)) from None  # a config's fault, not a bug


def _check_model_dir(model_dir: str):
  """--model_dir (local or a URL) must be a folder or not exist yet."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if tf.io.gfile.exists(model_dir) and not tf.io.gfile.isdir(model_dir):
    raise ValueError(f'--model_dir={model_dir}: is a file; give a folder '
                     '(it is created if missing)')


class _Discard(io.TextIOBase):
  """A text stream that keeps nothing."""

  def write(self, text: str) -> int:
    return len(text)


def _is_train_loop_output(record: std_logging.LogRecord) -> bool:
  """Orbit's record of a training loop's output dictionary (every loss
  term, one per line): TensorBoard has those scalars, and the console has
  our one progress line per loop (`trainer.ProgressLine`)."""
  message = record.getMessage()
  return (record.pathname.replace('\\', '/').endswith('orbit/controller.py')
          and message.startswith('train | ') and ' | output: ' in message)


@contextlib.contextmanager
def _console(console: TextIO, errors: TextIO):
  """The console of a run. absl INFO lines (strategy, warm start,
  checkpoints) are progress: they go to `console` (stdout), so stderr holds
  only warnings and the one error line. Orbit's Controller logs each
  message and also prints it: the console shows the logged copy, the printed
  one is discarded (`_run`), and a training loop's output dictionary not at
  all."""
  progress = std_logging.StreamHandler(console)
  progress.addFilter(lambda record: record.levelno < std_logging.WARNING)
  progress.addFilter(lambda record: not _is_train_loop_output(record))
  problems = std_logging.StreamHandler(errors)
  problems.setLevel(std_logging.WARNING)
  for handler in (progress, problems):
    handler.setFormatter(std_logging.Formatter('%(levelname)s: %(message)s'))
  logger = std_logging.getLogger('absl')
  before = logger.handlers, logger.propagate
  logger.handlers = [progress, problems]
  logger.propagate = False  # printed once, not again by the root logger
  try:
    yield
  finally:
    logger.handlers, logger.propagate = before


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

"""`cmt-train`: train and/or evaluate an experiment config (DeepLab2's flags).

    cmt-train --config_file=F --mode={train,eval,train_and_eval,continuous_eval}
        --model_dir=D [--master=TPU] [--num_gpus=N]
        [--param NAME=VALUE ...] [--override field.path=value ...]
"""

import sys

from absl import app
from absl import flags
from absl import logging

from cmt import config as config_lib
from cmt import config_checks

FLAGS = flags.FLAGS
flags.DEFINE_string('config_file', None, 'Experiment textproto.')
flags.DEFINE_enum('mode', 'train',
                  ['train', 'eval', 'train_and_eval', 'continuous_eval'],
                  'What to run.')
flags.DEFINE_string('model_dir', None,
                    'Checkpoints, TensorBoard events (train/, eval/) and '
                    'eval/metrics.json go here; a GCS path on Cloud TPU.')
flags.DEFINE_string('master', '', 'TPU name or grpc:// address; empty: no TPU.')
flags.DEFINE_integer('num_gpus', 0, 'GPUs to mirror over (>= 2 to mirror).')
flags.DEFINE_multi_string('param', [], 'NAME=VALUE for a ${NAME} placeholder '
                          'of the config.')
flags.DEFINE_multi_string('override', [], 'field.path=value applied on top of '
                          'the config.')


def _train(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  # pylint: disable=g-import-not-at-top
  from cmt.trainer import strategy as strategy_lib
  from cmt.trainer import train_lib
  from cmt.trainer import trainer as trainer_lib
  try:
    options = config_lib.load_config(
        FLAGS.config_file, params=config_lib.parse_params(FLAGS.param),
        overrides=FLAGS.override,
        purposes=config_checks.MODE_PURPOSES.get(FLAGS.mode, ()))
    strategy = strategy_lib.create_strategy(FLAGS.master, FLAGS.num_gpus)
    train_lib.run_experiment(FLAGS.mode, options, FLAGS.model_dir, strategy,
                             config_file=FLAGS.config_file)
  except (config_lib.ConfigError, ValueError,
          trainer_lib.NonFiniteLossError) as error:
    logging.error('%s', error)
    print(f'cmt-train: error: {error}', file=sys.stderr)
    return 1
  return 0


def main(argv=None) -> int:
  """Parses `argv` (default: sys.argv[1:]) and runs; returns the exit status."""
  argv = ['cmt-train'] + list(sys.argv[1:] if argv is None else argv)
  FLAGS.unparse_flags()  # main() may run more than once in one process
  try:
    remaining = FLAGS(argv)
  except flags.Error as error:
    print(f'cmt-train: {error}\nTry --helpfull.', file=sys.stderr)
    return 2
  for name in ('config_file', 'model_dir'):
    if not FLAGS[name].value:
      print(f'cmt-train: --{name} is required', file=sys.stderr)
      return 2
  logging.set_verbosity(logging.INFO)
  _print_orbit_messages_once()
  return _train(remaining)


def _print_orbit_messages_once():
  """Orbit's controller both logs and prints each message, so every loop's
  output dict reached the console twice; keep only the print."""
  from orbit import controller  # pylint: disable=g-import-not-at-top
  controller._log = lambda message: print(message, flush=True)  # pylint: disable=protected-access


def run():
  sys.exit(main())


if __name__ == '__main__':
  run()

"""`cmt-config params F [F ...]`: inference parameter count of each config's
model (training-only auxiliary semantic head excluded, as DeepLab2 counts
MaX-DeepLab-S at 61.9M).

Registered in `cmt.config_tool.SUBCOMMANDS`; TensorFlow is imported only when
the subcommand runs, so `cmt-config validate` stays light.
"""

import sys

from cmt import config


def _add_arguments(parser):
  parser.add_argument('config_files', nargs='+')
  parser.add_argument('--override', action='append', default=[],
                      help='field.path=value, applied after loading')


def load_for_counting(path: str, overrides=()):
  """Loads a config with every `${NAME}` placeholder left as its own name
  (paths do not change a parameter count)."""
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except OSError as error:
    raise config.ConfigError(
        f'{path}: cannot read config: {error.strerror}') from None
  params = {p.name: p.name for p in config.find_placeholders(text)}
  return config.load_config(path, params=params, overrides=overrides)


def _run(args) -> int:
  from cmt.data import dataset_info  # pylint: disable=g-import-not-at-top
  from cmt.model import builder  # pylint: disable=g-import-not-at-top
  failed = 0
  for path in args.config_files:
    try:
      options = load_for_counting(path, args.override)
      info = dataset_info.get_dataset_info(options.train_dataset_options)
      count = builder.count_inference_params(options, info)
    except (config.ConfigError, ValueError) as error:
      print(f'{path}: {error}', file=sys.stderr)
      failed += 1
      continue
    print(f'{path}: {count:,} parameters ({count / 1e6:.1f}M)')
  return 1 if failed else 0


def register(subcommands) -> None:
  subcommands['params'] = (
      'print the inference parameter count of each config\'s model',
      _add_arguments, _run)

"""`cmt-config params F [F ...]`: inference parameter count of each config's
model (training-only auxiliary semantic head excluded, as DeepLab2 counts
MaX-DeepLab-S at 61.9M).

Registered in `cmt.config_tool.SUBCOMMANDS`; TensorFlow is imported only when
the subcommand runs, so `cmt-config validate` stays light.
"""

from cmt import cli
from cmt import config


def _add_arguments(parser):
  parser.add_argument('config_files', nargs='+')
  parser.add_argument('--param', action='append', default=[],
                      help='NAME=VALUE for a ${NAME} placeholder (else the '
                      'environment; paths may stay unset)')
  parser.add_argument('--override', action='append', default=[],
                      help='field.path=value, applied after loading')


def _count(path: str, params, overrides) -> int:
  """Placeholders --param and the environment leave unset keep their own
  text (paths do not change a parameter count)."""
  options, unset = config.load_config_leaving_unset(path, params, overrides)
  from cmt.data import dataset_info  # pylint: disable=g-import-not-at-top
  from cmt.model import builder  # pylint: disable=g-import-not-at-top
  try:
    info = dataset_info.get_dataset_info(options.train_dataset_options)
  except ValueError as error:
    # e.g. a custom dataset's ${CATEGORIES_JSON}: the class count needs it.
    raise ValueError(f'{error}{config.unset_placeholder_hint(unset)}'
                     if unset else str(error)) from None
  return builder.count_inference_params(options, info)


def _run(args) -> int:
  params = config.parse_params(args.param)
  failed = 0
  for path in args.config_files:
    try:
      count = _count(path, params, args.override)
    except ValueError as error:  # ConfigError too
      if path not in str(error):
        error = ValueError(f'{path}: {error}')
      cli.report('cmt-config', error)
      failed += 1
      continue
    print(f'{path}: {count:,} parameters ({count / 1e6:.1f}M)')
  return 1 if failed else 0


def register(subcommands) -> None:
  subcommands['params'] = (
      'print the inference parameter count of each config\'s model',
      _add_arguments, _run)

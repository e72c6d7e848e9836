"""`cmt-config`: validate, print and size experiment configs.

  cmt-config validate F [F ...] [--param NAME=VALUE ...]
      [--override field=value ...]
  cmt-config print F [--param NAME=VALUE ...] [--override field=value ...]
  cmt-config params F [F ...] [--param NAME=VALUE ...]
      [--override field=value ...]

`params` prints the inference parameter count of each config's model (the
training-only auxiliary semantic head excluded, as DeepLab2 counts
MaX-DeepLab-S at 61.9M); it alone imports TensorFlow, when it runs.
"""

import argparse

from google.protobuf import text_format

from cmt import cli
from cmt import config as config_lib
from cmt import config_checks
from cmt.tools import flags


def _validate(args) -> int:
  """Each file checked as every run would check it (cmt.config_checks): to
  train, evaluate and export."""
  failed = 0
  for path in args.config_files:
    try:
      _, unset = config_lib.load_config_leaving_unset(
          path, config_lib.parse_params(args.param), args.override,
          purposes=config_checks.ALL_PURPOSES)
    except config_lib.ConfigError as error:
      cli.report('cmt-config', error)
      failed += 1
      continue
    note = (' (placeholders to fill at launch: ' + ', '.join(unset) +
            ')') if unset else ''
    print(f'{path}: OK{note}')
  return 1 if failed else 0


def _print(args) -> int:
  options = config_lib.load_config(args.config_file,
                                   params=config_lib.parse_params(args.param),
                                   overrides=args.override)
  print(text_format.MessageToString(options), end='')
  return 0


def _count_params(path: str, params, overrides) -> int:
  """Placeholders --param and the environment leave unset keep their own
  text (paths do not change a parameter count)."""
  options, unset = config_lib.load_config_leaving_unset(path, params,
                                                        overrides)
  from cmt.data import dataset_info  # pylint: disable=g-import-not-at-top
  from cmt.model import builder  # pylint: disable=g-import-not-at-top
  try:
    info = dataset_info.get_dataset_info(options.train_dataset_options)
  except ValueError as error:
    # e.g. a custom dataset's ${CATEGORIES_JSON}: the class count needs it.
    raise ValueError(f'{error}{config_lib.unset_placeholder_hint(unset)}'
                     if unset else str(error)) from None
  return builder.count_inference_params(options, info)


def _params(args) -> int:
  params = config_lib.parse_params(args.param)
  failed = 0
  for path in args.config_files:
    try:
      count = _count_params(path, params, args.override)
    except ValueError as error:  # ConfigError too
      if path not in str(error):
        error = ValueError(f'{path}: {error}')
      cli.report('cmt-config', error)
      failed += 1
      continue
    print(f'{path}: {count:,} parameters ({count / 1e6:.1f}M)')
  return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(prog='cmt-config', description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  for name, files, run_fn, help_text in (
      ('validate', 'config_files', _validate,
       'check config files: what passes trains, evaluates and exports'),
      ('print', 'config_file', _print, 'print the resolved config'),
      ('params', 'config_files', _params,
       'print the inference parameter count of each config\'s model')):
    command = sub.add_parser(name, help=help_text)
    command.add_argument(files, nargs='+' if files.endswith('s') else None)
    config_lib.add_config_flags(command, unset_paths_allowed=name != 'print')
    command.set_defaults(run=run_fn)
  return parser


@cli.command('cmt-config')
def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  return args.run(args)


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

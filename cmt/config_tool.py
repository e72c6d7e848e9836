"""`cmt-config`: validate and print experiment configs.

  cmt-config validate F [F ...] [--param NAME=VALUE ...]
      [--override field=value ...]
  cmt-config print F [--param NAME=VALUE ...] [--override field=value ...]
"""

import argparse

from google.protobuf import text_format

from cmt import cli
from cmt import config
from cmt import config_checks

# Subcommands besides validate and print: name -> (help, add_arguments, run).
SUBCOMMANDS = {}

# `params` lives in cmt.model.params_command, which imports TensorFlow only
# when it runs.
from cmt.model import params_command  # pylint: disable=g-import-not-at-top,wrong-import-position

params_command.register(SUBCOMMANDS)


def _validate(args) -> int:
  """Each file checked as every run would check it (cmt.config_checks): to
  train, evaluate and export."""
  failed = 0
  for path in args.config_files:
    try:
      _, unset = config.load_config_leaving_unset(
          path, config.parse_params(args.param), args.override,
          purposes=config_checks.ALL_PURPOSES)
    except config.ConfigError as error:
      cli.report('cmt-config', error)
      failed += 1
      continue
    note = (' (placeholders to fill at launch: ' + ', '.join(unset) +
            ')') if unset else ''
    print(f'{path}: OK{note}')
  return 1 if failed else 0


def _print(args) -> int:
  options = config.load_config(args.config_file,
                               params=config.parse_params(args.param),
                               overrides=args.override)
  print(text_format.MessageToString(options), end='')
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(prog='cmt-config', description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  validate = sub.add_parser(
      'validate', help='check config files: what passes trains, evaluates '
      'and exports')
  validate.add_argument('config_files', nargs='+')
  validate.add_argument('--param', action='append', default=[],
                        help='fill ${NAME} placeholders: NAME=VALUE')
  validate.add_argument('--override', action='append', default=[],
                        help='field.path=value, applied after loading')
  validate.set_defaults(run=_validate)
  show = sub.add_parser('print', help='print the resolved config')
  show.add_argument('config_file')
  show.add_argument('--param', action='append', default=[],
                    help='fill ${NAME} placeholders: NAME=VALUE')
  show.add_argument('--override', action='append', default=[],
                    help='field.path=value, applied after loading')
  show.set_defaults(run=_print)
  for name, (help_text, add_arguments, run_fn) in SUBCOMMANDS.items():
    command = sub.add_parser(name, help=help_text)
    add_arguments(command)
    command.set_defaults(run=run_fn)
  return parser


@cli.command('cmt-config')
def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  return args.run(args)


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

"""The flags that name a trained model (config + checkpoint), shared by
`cmt-export`, `cmt-predict` and `cmt-visualize`. No TensorFlow here, so the
commands' `--help` stays fast."""

import argparse

from cmt import config as config_lib
from cmt import config_checks


def add_model_flags(parser: argparse.ArgumentParser, required: bool):
  """--config_file / --checkpoint_path / --param / --override."""
  parser.add_argument('--config_file', required=required,
                      help='experiment textproto')
  parser.add_argument('--checkpoint_path', required=required,
                      help='checkpoint prefix, or a model_dir (its latest)')
  parser.add_argument('--param', action='append', default=[],
                      help='NAME=VALUE for a ${NAME} placeholder (else the '
                      'environment; data paths may stay unset)')
  parser.add_argument('--override', action='append', default=[],
                      help='field.path=value on top of the config')


def load_options(args):
  """The experiment of --config_file with --param / --override. Inference
  reads no data path, so placeholders without a value stay unset
  (`config.load_config_leaving_unset`)."""
  options, _ = config_lib.load_config_leaving_unset(
      args.config_file, config_lib.parse_params(args.param), args.override,
      purposes=(config_checks.EXPORT,))
  return options

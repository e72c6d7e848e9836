"""Flags naming a trained model, shared by several commands (the config
flags `--param` / `--override` are `config.add_config_flags`). No TensorFlow here, so
the commands' `--help` stays fast."""

import argparse

from cmt import config as config_lib
from cmt import config_checks


def add_model_flags(parser: argparse.ArgumentParser, required: bool):
  """--config_file / --checkpoint_path / --param / --override: a trained
  model (cmt-export, cmt-predict, cmt-visualize)."""
  parser.add_argument('--config_file', required=required,
                      help='experiment textproto')
  parser.add_argument('--checkpoint_path', required=required,
                      help='checkpoint prefix, or a model_dir (its latest)')
  config_lib.add_config_flags(parser, unset_paths_allowed=True)


def load_model_options(args):
  """The experiment of --config_file with --param / --override, checked for
  export. Building a network reads no data path, so placeholders without a
  value stay unset (`config.load_config_leaving_unset`)."""
  options, _ = config_lib.load_config_leaving_unset(
      args.config_file, config_lib.parse_params(args.param), args.override,
      purposes=(config_checks.EXPORT,))
  return options

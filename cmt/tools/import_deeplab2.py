"""`cmt-import-deeplab2`: a DeepLab2 checkpoint -> a checkpoint of ours.

  cmt-import-deeplab2 --deeplab2_checkpoint=PATH --config_file=F \
      [--param NAME=VALUE ...] [--override field=value ...] --output_dir=DIR
      [--overwrite]

What is mapped and how: `cmt.deeplab2.import_checkpoint`. DIR is written
under a temporary name and renamed when complete; an existing non-empty DIR is
replaced only with --overwrite.
"""

from typing import Optional, Sequence

from cmt import cli
from cmt import config as config_lib
from cmt.tools import flags


@cli.command('cmt-import-deeplab2')
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = cli.ArgumentParser(prog='cmt-import-deeplab2', description=__doc__)
  parser.add_argument('--deeplab2_checkpoint', required=True,
                      help='DeepLab2 checkpoint prefix, or a directory (its '
                      'latest checkpoint)')
  parser.add_argument('--config_file', required=True,
                      help='experiment textproto describing the network')
  config_lib.add_config_flags(parser, unset_paths_allowed=True)
  parser.add_argument('--output_dir', required=True,
                      help='directory to write our checkpoint to')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing non-empty --output_dir')
  args = parser.parse_args(argv)
  options = flags.load_model_options(args)
  from cmt.deeplab2 import import_checkpoint  # pylint: disable=g-import-not-at-top
  import_checkpoint.convert(options, args.deeplab2_checkpoint,
                            args.output_dir, args.overwrite)
  print(f'checkpoint written to {args.output_dir} (use it as '
        f'--checkpoint_path={args.output_dir} or initial_checkpoint)')
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

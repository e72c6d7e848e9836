"""`cmt-export`: a trained checkpoint -> a self-contained SavedModel.

  cmt-export --config_file=F --checkpoint_path=C --output_path=O
      [--param NAME=VALUE ...] [--override field.path=value ...] [--overwrite]

What the SavedModel holds: `cmt.export`. --output_path may be local or a
URL (gs://...). It is written under a temporary name and moved in place
when complete, its saved_model.pb last; an existing --output_path is
replaced only with --overwrite.
"""

from typing import Optional, Sequence

from cmt import atomic_files
from cmt import cli
from cmt.tools import flags


@cli.command('cmt-export')
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = cli.ArgumentParser(prog='cmt-export', description=__doc__)
  flags.add_model_flags(parser, required=True)
  parser.add_argument('--output_path', required=True,
                      help='SavedModel directory to write')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing --output_path')
  args = parser.parse_args(argv)
  if not args.overwrite:  # before minutes of work
    atomic_files.refuse_existing([args.output_path])
  options = flags.load_model_options(args)
  from cmt import export  # pylint: disable=g-import-not-at-top
  inference = export.build_inference(options, args.checkpoint_path)
  path = export.export(inference, args.output_path, args.overwrite)
  print(f'SavedModel written to {path}')
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

"""`cmt-synthetic-data`: a procedurally generated panoptic dataset in COCO
panoptic format (what is drawn: `cmt.data.synthetic`)."""

import argparse
import os
from typing import Optional

from cmt import atomic_files
from cmt import cli
from cmt.data import synthetic


@cli.command('cmt-synthetic-data')
def main(argv: Optional[list[str]] = None) -> int:
  parser = cli.ArgumentParser(
      prog='cmt-synthetic-data', description=synthetic.__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--output_dir', required=True, type=cli.local_path,
                      help='written as a whole; must not exist (or be empty)')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing --output_dir')
  parser.add_argument('--num_train', type=int, default=200)
  parser.add_argument('--num_val', type=int, default=50)
  parser.add_argument('--image_size', type=int, default=129,
                      help='height and width of the square images')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--difficulty', choices=sorted(synthetic.DIFFICULTIES),
                      default='demo',
                      help='scene difficulty (see above; default: %(default)s)')
  args = parser.parse_args(argv)
  for name in ('num_train', 'num_val'):
    if getattr(args, name) < 0:
      parser.error(f'--{name} must be >= 0')
  if args.image_size < 48:
    parser.error(f'--image_size must be >= 48, got {args.image_size}')
  with atomic_files.atomic_directory(args.output_dir,
                                     args.overwrite) as temporary:
    paths = synthetic.write_dataset(
        temporary, args.num_train, args.num_val,
        (args.image_size, args.image_size), args.seed,
        synthetic.DIFFICULTIES[args.difficulty])
  print(f'wrote {args.num_train} train and {args.num_val} val images to '
        f'{args.output_dir}')
  for split in ('train', 'val'):
    if f'{split}_json' in paths:
      print('convert with: cmt-build-data ' + ' '.join(
          synthetic.build_data_args(
              args.output_dir, split,
              os.path.join(args.output_dir, 'tfrecords'))))
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

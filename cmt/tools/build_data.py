"""`cmt-build-data`: a COCO-panoptic-format dataset -> sharded TFRecords
(what is written and checked: `cmt.data.build_data`)."""

import argparse
import os

from cmt import cli
from cmt.data import build_data
from cmt.data import dataset_info


def parse_args(argv=None) -> argparse.Namespace:
  parser = cli.ArgumentParser(prog='cmt-build-data',
                              description=build_data.__doc__)
  parser.add_argument('--image_dir', required=True, type=cli.local_path,
                      help='folder of the images (JPEG or PNG)')
  parser.add_argument('--panoptic_json', required=True, type=cli.local_path,
                      help='COCO panoptic annotations JSON')
  parser.add_argument('--panoptic_dir', required=True, type=cli.local_path,
                      help='folder of the panoptic RGB-id PNGs')
  parser.add_argument('--output_dir', required=True,
                      help='folder of the shards, local or a URL (gs://...)')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace shards of the same names')
  parser.add_argument('--categories_json', default='',
                      help='categories of a custom dataset (id, name, '
                      'isthing); default: the built-in COCO panoptic ones')
  parser.add_argument('--split_name', default='',
                      help='shard name prefix; default: the JSON name '
                      'without "panoptic_" (panoptic_val2017.json -> '
                      'val2017)')
  parser.add_argument(
      '--num_shards', type=int, default=1024,
      help='number of shards (at most one per image; default: %(default)s). '
      'Each training host reads whole shards when the host count divides '
      'the shard count, otherwise it splits shards by record (read '
      'overhead). 1024 is a multiple of every power-of-two host count up to '
      'a 64-host pod and gives COCO train2017 about 115 images a shard '
      '(DeepLab2 writes 1000); for other pods pick a multiple of their host '
      'counts. A small split (val2017, 5000 images) needs fewer, e.g. 32')
  parser.add_argument('--num_workers', type=int,
                      default=max(1, min(os.cpu_count() or 1, 16)),
                      help='parallel conversion processes')
  return parser.parse_args(argv)


@cli.command('cmt-build-data')
def main(argv=None) -> int:
  args = parse_args(argv)
  info = (dataset_info.from_categories_json(args.categories_json)
          if args.categories_json else dataset_info.COCO_PANOPTIC)
  summary = build_data.build(
      args.image_dir, args.panoptic_json, args.panoptic_dir, args.output_dir,
      info, args.split_name or build_data.default_split_name(
          args.panoptic_json),
      args.num_shards, args.num_workers, overwrite=args.overwrite)
  print(summary.format(info))
  print(f'wrote {len(summary.shards)} shards to {args.output_dir}')
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

"""`cmt-evaluate`: offline panoptic quality of COCO panoptic predictions.

    cmt-evaluate --gt_json=panoptic_val2017.json --gt_folder=panoptic_val2017 \
        --pred_json=predictions.json --pred_folder=predictions \
        [--categories_json=F] [--output_json=F [--overwrite]] [--workers=N]

Works for any system's predictions in COCO panoptic format and gives the
numbers of COCO's panopticapi (`pq_compute`), printed as its All / Things /
Stuff table. `--output_json` also gets the per-class numbers. Exit status 0
on success, 1 on bad input (the message names the file at fault). The
ground truth and predictions are read by worker processes from the local
disk (copy them from GCS first); --categories_json and --output_json may be
URLs.
"""

import argparse
import json
import time
from typing import Optional, Sequence

from cmt import atomic_files
from cmt import cli
from cmt.evaluation import offline_evaluation


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog='cmt-evaluate',
      description='Panoptic quality (PQ, SQ, RQ) of COCO panoptic '
      'predictions, as COCO panopticapi computes it.')
  parser.add_argument('--gt_json', required=True, type=cli.local_path,
                      help='ground-truth COCO panoptic JSON')
  parser.add_argument('--gt_folder', required=True, type=cli.local_path,
                      help='folder of the ground-truth panoptic PNGs')
  parser.add_argument('--pred_json', required=True, type=cli.local_path,
                      help='prediction COCO panoptic JSON')
  parser.add_argument('--pred_folder', required=True,
                      type=cli.local_path,
                      help='folder of the predicted panoptic PNGs')
  parser.add_argument('--categories_json', default=None,
                      help='categories (list or {"categories": [...]}); '
                      'default: the categories of --gt_json')
  parser.add_argument('--output_json', default=None,
                      help='write all metrics, per class too, to this file')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace an existing --output_json')
  parser.add_argument('--workers', type=int,
                      default=offline_evaluation.default_workers(),
                      help='processes reading and comparing images '
                      '(default: every core, here %(default)s)')
  return parser


@cli.command('cmt-evaluate')
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  if args.output_json and not args.overwrite:
    atomic_files.refuse_existing([args.output_json])
  sources = offline_evaluation.Sources(
      gt_json=args.gt_json, gt_folder=args.gt_folder,
      pred_json=args.pred_json, pred_folder=args.pred_folder)
  start = time.perf_counter()
  metrics, _ = offline_evaluation.evaluate(
      sources, categories_json=args.categories_json, workers=args.workers)
  seconds = time.perf_counter() - start
  print(offline_evaluation.format_table(metrics))
  print(f'{metrics["num_images"]} images in {seconds:.2f} s')
  if args.output_json:
    with atomic_files.open_atomic(args.output_json) as f:
      json.dump(metrics, f, indent=1)
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

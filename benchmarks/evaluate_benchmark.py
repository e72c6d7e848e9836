"""Throughput of `cmt-evaluate` (images per second) on synthetic pairs.

Generates a few hundred ground-truth / prediction pairs in COCO panoptic
format (COCO's 133 categories, COCO-like image sizes and segment counts:
rectangles of random things and stuff; the prediction jitters every
segment and drops or relabels some), then times the offline evaluation as
`cmt-evaluate` runs it, with one worker and with several.

    python benchmarks/evaluate_benchmark.py [--images 300] [--workers 2]
"""

import argparse
import os
import tempfile
import time

import numpy as np

from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import coco_panoptic_format
from cmt.evaluation import offline_evaluation

INFO = dataset_info_lib.COCO_PANOPTIC


def synthetic_pair(rng, height=480, width=640, things=12, stuff=5):
  """(ground truth, prediction) label maps `semantic * 256 + instance`."""
  thing_classes = [c for c in range(1, INFO.num_classes + 1)
                   if INFO.is_thing(c)]
  stuff_classes = [c for c in range(1, INFO.num_classes + 1)
                   if not INFO.is_thing(c)]
  gt = np.zeros((height, width), np.int64)
  pred = np.zeros((height, width), np.int64)
  # Stuff: horizontal bands; things: rectangles on top.
  edges = np.sort(rng.integers(0, height, stuff - 1))
  bands = np.split(np.arange(height), edges)
  for band, class_id in zip(bands, rng.choice(stuff_classes, stuff)):
    if len(band):
      gt[band] = class_id * 256
      shift = int(rng.integers(-8, 9))
      rows = np.clip(band + shift, 0, height - 1)
      pred[rows] = class_id * 256
  counts = {}
  for _ in range(things):
    class_id = int(rng.choice(thing_classes[:10]))
    counts[class_id] = counts.get(class_id, 0) + 1
    label = class_id * 256 + counts[class_id]
    h, w = rng.integers(20, 160, 2)
    y, x = rng.integers(0, height - h), rng.integers(0, width - w)
    gt[y:y + h, x:x + w] = label
    roll = rng.random()
    if roll < 0.1:
      continue                                   # missed
    if roll < 0.2:
      label = int(rng.choice(thing_classes[:10])) * 256 + 200
    dy, dx = rng.integers(-10, 11, 2)
    pred[max(y + dy, 0):y + dy + h, max(x + dx, 0):x + dx + w] = label
  gt[rng.random((height, width)) < 0.02] = 0     # scattered void
  return gt, pred


def write_dataset(folder, count, seed=0):
  rng = np.random.default_rng(seed)
  writers = {name: coco_panoptic_format.CocoPanopticWriter(
      os.path.join(folder, f'{name}.json'), os.path.join(folder, name), INFO)
             for name in ('gt', 'pred')}
  for index in range(count):
    gt, pred = synthetic_pair(rng)
    writers['gt'].add(f'{index:012d}', gt)
    writers['pred'].add(f'{index:012d}', pred)
  for writer in writers.values():
    writer.write_json()
  return offline_evaluation.Sources(
      gt_json=os.path.join(folder, 'gt.json'),
      gt_folder=os.path.join(folder, 'gt'),
      pred_json=os.path.join(folder, 'pred.json'),
      pred_folder=os.path.join(folder, 'pred'))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=300)
  parser.add_argument('--workers', type=int, default=2)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    sources = write_dataset(folder, args.images)
    print(f'wrote {args.images} synthetic 640x480 pairs in '
          f'{time.perf_counter() - start:.1f} s')
    timings = {}
    for workers in sorted({1, args.workers}):
      start = time.perf_counter()
      metrics, _ = offline_evaluation.evaluate(sources, workers=workers)
      timings[workers] = time.perf_counter() - start
      print(f'workers={workers}: {args.images / timings[workers]:.1f} '
            f'images/s (PQ {metrics["pq"]:.1f}, n {metrics["n"]})')
    if len(timings) > 1:
      print(f'speed-up with {args.workers} workers: '
            f'{timings[1] / timings[args.workers]:.2f}x')
  print(offline_evaluation.format_table(metrics))


if __name__ == '__main__':
  main()

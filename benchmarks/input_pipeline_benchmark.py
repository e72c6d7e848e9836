"""Input-pipeline throughput (images/s) at crop 641 with targets.

    python benchmarks/input_pipeline_benchmark.py [--num_images=32]
        [--batch_size=8] [--num_batches=12] [--image_height=480]
        [--image_width=640]

Synthesises COCO-sized images (`cmt.data.synthetic`, default 480 x 640),
converts them with `cmt-build-data`, then times `cmt.data.pipeline` as
MaX-DeepLab trains on COCO at 641: resize to 641, random scale 0.5-1.5,
pad, crop 641 x 641, flip, K = 128 targets. Prints images/s after a warm-up
and the same figure for evaluation data (resize + pad only).
"""

import argparse
import os
import sys
import tempfile
import time

from cmt import common
from cmt.data import build_data
from cmt.data import dataset_info
from cmt.data import pipeline
from cmt.data import synthetic
from cmt.protos import dataset_pb2


def _time(dataset, num_batches: int, batch_size: int) -> float:
  iterator = iter(dataset)
  for _ in range(2):  # warm-up: tracing, file opening, autotuning
    next(iterator)
  start = time.perf_counter()
  images = 0
  for _ in range(num_batches):
    batch = next(iterator)
    images += int(batch[common.IMAGE].shape[0])
  # Touch the last batch so its work is surely done.
  _ = batch[common.GT_MASK_ID].numpy()
  return images / (time.perf_counter() - start)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--num_images', type=int, default=32)
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--num_batches', type=int, default=12)
  parser.add_argument('--image_height', type=int, default=480)
  parser.add_argument('--image_width', type=int, default=640)
  args = parser.parse_args(argv)

  with tempfile.TemporaryDirectory() as root:
    raw = os.path.join(root, 'raw')
    paths = synthetic.write_dataset(raw, num_train=args.num_images, num_val=0,
                                    image_size=(args.image_height,
                                                args.image_width), seed=1)
    info = dataset_info.from_categories_json(paths['categories_json'])
    build_data.build(os.path.join(raw, 'images', 'train'),
                     paths['train_json'],
                     os.path.join(raw, 'panoptic', 'train'),
                     os.path.join(root, 'records'), info, 'train',
                     num_shards=4, num_workers=os.cpu_count() or 1,
                     show_progress=False)
    options = dataset_pb2.DatasetOptions(
        categories_json=paths['categories_json'],
        file_pattern=[os.path.join(root, 'records', 'train-*')],
        batch_size=args.batch_size, crop_size=[641, 641],
        min_resize_value=641, max_resize_value=641, max_num_masks=128,
        shuffle_buffer_size=64)
    options.augmentations.SetInParent()  # paper defaults: 0.5-1.5, flip 0.5
    train = pipeline.build_dataset(options, info, is_training=True)
    train_rate = _time(train, args.num_batches, args.batch_size)

    eval_options = dataset_pb2.DatasetOptions()
    eval_options.CopyFrom(options)
    eval_options.ClearField('augmentations')
    evaluation = pipeline.build_dataset(eval_options, info,
                                        is_training=False).repeat()
    eval_rate = _time(evaluation, args.num_batches, args.batch_size)

  print(f'input pipeline, crop 641, K=128 targets, {os.cpu_count()} CPU '
        f'cores, {args.image_height}x{args.image_width} JPEGs, batch '
        f'{args.batch_size}:')
  print(f'  training   (resize, scale 0.5-1.5, pad, crop, flip): '
        f'{train_rate:7.1f} images/s')
  print(f'  evaluation (resize, pad):                            '
        f'{eval_rate:7.1f} images/s')
  return 0


if __name__ == '__main__':
  sys.exit(main())

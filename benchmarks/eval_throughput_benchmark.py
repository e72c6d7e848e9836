"""Evaluation throughput (images per second) of `cmt-train --mode=eval`.

Builds the evaluation run exactly as `cmt-train --mode=eval` does
(`cmt.trainer.train_lib.build_run`: model, post-processing, the evaluation
inputs, the Orbit evaluator) from the CMT-DeepLab R50 paper config (Table
3, crop 641) with random weights, float32 and `trainer_options.jit_compile`
off, on synthetic COCO-sized images (640 x 480, resized up to the crop),
and times whole evaluation passes: the first (tracing) and the best of the
next --passes. Everything counts: input pipeline, model, post-processing,
the host's metrics.

  python benchmarks/eval_throughput_benchmark.py [--images 4] [--batch 2]
      [--crop 641] [--passes 2]

It uses only `train_lib.build_run` and the evaluator's `evaluate`, so the
same script times an older checkout (run it with that checkout's Python
from that checkout's root).
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

CONFIG = 'configs/coco/cmt_deeplab/table3_r50_res641_100k.textproto'


def write_images(folder: str, count: int) -> dict:
  # pylint: disable=g-import-not-at-top
  from cmt.tools import build_data as build_data_tool
  from cmt.data import synthetic
  synthetic.write_dataset(folder, num_train=0, num_val=count,
                          image_size=(480, 640))
  tfrecords = os.path.join(folder, 'tfrecords')
  if build_data_tool.main(synthetic.build_data_args(folder, 'val', tfrecords) +
                          ['--num_shards=1', '--num_workers=1']) != 0:
    raise RuntimeError('cmt-build-data failed on the synthetic images')
  pattern = os.path.join(tfrecords, 'val-*')
  return {'TRAIN_SET': pattern, 'VAL_SET': pattern}


def main() -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--images', type=int, default=4)
  parser.add_argument('--batch', type=int, default=2)
  parser.add_argument('--crop', type=int, default=641)
  parser.add_argument('--passes', type=int, default=2)
  args = parser.parse_args()
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from cmt import config as config_lib
  from cmt.trainer import strategy as strategy_lib
  from cmt.trainer import train_lib
  root = pathlib.Path.cwd()
  overrides = [
      f'eval_dataset_options.batch_size={args.batch}',
      f'eval_dataset_options.crop_size={args.crop},{args.crop}',
      f'eval_dataset_options.min_resize_value={args.crop}',
      f'eval_dataset_options.max_resize_value={args.crop}',
      'trainer_options.solver_options.precision=FLOAT32',
      'trainer_options.jit_compile=false',
      'evaluator_options.num_summary_images=0',
  ]
  with open(root / CONFIG, encoding='utf-8') as f:
    blank = {p.name: '' for p in config_lib.find_placeholders(f.read())}
  with tempfile.TemporaryDirectory() as folder:
    params = {**blank, **write_images(os.path.join(folder, 'data'),
                                      args.images)}
    options = config_lib.load_config(str(root / CONFIG), params=params,
                                     overrides=overrides)
    strategy = strategy_lib.create_strategy('', 0)
    with train_lib.precision_policy(options.trainer_options.solver_options):
      run = train_lib.build_run('eval', options,
                                os.path.join(folder, 'run'), strategy)
      times = []
      for _ in range(1 + args.passes):
        start = time.perf_counter()
        run.evaluator.evaluate(tf.constant(-1))
        times.append(time.perf_counter() - start)
  images = run.evaluator.last_result['num_images']
  print(f'{root.name}: {images} images, crop {args.crop}, batch '
        f'{args.batch}: first pass {times[0]:.1f} s; best later pass '
        f'{min(times[1:]):.1f} s = {images / min(times[1:]):.3f} images/s')
  return 0


if __name__ == '__main__':
  sys.exit(main())

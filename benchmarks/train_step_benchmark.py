"""Times one training step (batch 1) of the paper's models on this machine.

For each selected model x crop x XLA setting, builds the run exactly as
`cmt-train --mode=train` does (`cmt.trainer.train_lib.build_run`: model,
loss, optimiser, the tf.data pipeline, the Orbit trainer) from the paper
config with batch_size=1, the crop, float32 (bfloat16 is for TPUs) and
`trainer_options.jit_compile` on or off, feeds it synthetic images of the
crop's size, and prints the time of the first step (tracing and, with XLA,
compiling) and the median of the next ones.

  python benchmarks/train_step_benchmark.py [--models max_s cmt_r50]
      [--crops 321 641] [--xla off on] [--steps 5] [--budget_seconds 1800]

Models: max_s = MaX-DeepLab-S as DeepLab2 configures it (ReLU; the model
memory_benchmark.py sets beside DeepLab2's), max_s_gelu = the GeLU MaX-S
that is the baseline of the paper's ablations (Table 2), cmt_r50 =
CMT-DeepLab Axial-R50 with every switch (Table 3, crop 641, 100k). A
setting that would start after --budget_seconds is skipped and listed as
such (XLA at crop 641 can take very long to compile on a CPU).
"""

import argparse
import itertools
import os
import pathlib
import statistics
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = {
    'max_s': 'configs/coco/max_deeplab/max_deeplab_s_os16_res641_100k.textproto',
    'max_s_gelu':
        'configs/coco/max_deeplab/max_deeplab_s_gelu_res641_100k.textproto',
    'cmt_r50': 'configs/coco/cmt_deeplab/table3_r50_res641_100k.textproto',
}


# Gradient-recomputation settings (`model_options.recompute`) by name: off,
# all, config (what the config sets), or kinds joined by '+' (e.g.
# axial+transformer); the kinds name the proto's fields.
RECOMPUTE_KINDS = {'conv': 'conv_blocks', 'axial': 'axial_blocks',
                   'transformer': 'transformer_layers',
                   'decoder': 'decoder_stages'}


def recompute_overrides(setting: str) -> list[str]:
  """The config overrides of a recompute setting (ValueError if unknown)."""
  if setting == 'config':
    return []
  kinds = {'off': set(), 'all': set(RECOMPUTE_KINDS)}.get(
      setting, set(setting.split('+')))
  unknown = kinds - set(RECOMPUTE_KINDS)
  if unknown:
    raise ValueError(f'recompute setting {setting!r}: unknown kind '
                     f'{sorted(unknown)[0]!r} (off, all, config or '
                     f'{"+".join(RECOMPUTE_KINDS)} joined by +)')
  return [f'model_options.recompute.{field}={str(kind in kinds).lower()}'
          for kind, field in RECOMPUTE_KINDS.items()]


def write_images(folder: str, crop: int) -> dict:
  """Two synthetic train images of the crop's size, as TFRecords."""
  from cmt.tools import build_data as build_data_tool  # pylint: disable=g-import-not-at-top
  from cmt.data import synthetic  # pylint: disable=g-import-not-at-top
  synthetic.write_dataset(folder, num_train=2, num_val=0,
                          image_size=(crop, crop))
  tfrecords = os.path.join(folder, 'tfrecords')
  if build_data_tool.main(
      synthetic.build_data_args(folder, 'train', tfrecords) +
      ['--num_shards=1', '--num_workers=1']) != 0:
    raise RuntimeError('cmt-build-data failed on the synthetic images')
  return {'TRAIN_SET': os.path.join(tfrecords, 'train-*'),
          'VAL_SET': os.path.join(tfrecords, 'train-*')}


def time_setting(config_file: str, crop: int, xla: bool, params: dict,
                 steps: int, extra_overrides=(),
                 fixed_batch: bool = False) -> tuple[float, float]:
  """(first step seconds, median later step seconds); `extra_overrides`
  are further `--override`s of the config. With `fixed_batch`, one batch is
  read, the input pipeline dropped, and the trainer's step runs on that
  batch held as constants (the step alone, as a DeepLab2 step is measured
  in memory_benchmark.py)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from cmt import config as config_lib
  from cmt.trainer import strategy as strategy_lib
  from cmt.trainer import train_lib
  overrides = [
      'train_dataset_options.batch_size=1',
      f'train_dataset_options.crop_size={crop},{crop}',
      f'train_dataset_options.min_resize_value={crop}',
      f'train_dataset_options.max_resize_value={crop}',
      'trainer_options.solver_options.precision=FLOAT32',
      f'trainer_options.jit_compile={str(xla).lower()}',
      'trainer_options.steps_per_loop=1',
      'trainer_options.save_summaries_steps=1',
      *extra_overrides,
  ]
  path = str(REPO_ROOT / config_file)
  with open(path, encoding='utf-8') as f:
    # No ImageNet checkpoint here: its placeholder stays empty (random init;
    # the step time is the same).
    params = {**{p.name: '' for p in config_lib.find_placeholders(f.read())},
              **params}
  options = config_lib.load_config(path, params=params, overrides=overrides)
  strategy = strategy_lib.create_strategy('', 0)
  with tempfile.TemporaryDirectory() as model_dir, \
      train_lib.precision_policy(options.trainer_options.solver_options):
    run = train_lib.build_run('train', options, model_dir, strategy)
    one = tf.constant(1, tf.int32)
    step = lambda: run.trainer.train(one)  # pylint: disable=unnecessary-lambda-assignment
    if fixed_batch:
      batch = tf.nest.map_structure(
          lambda t: tf.constant(t.numpy()),
          next(iter(run.trainer.train_dataset)))
      step = tf.function(
          lambda: run.trainer.train_step(itertools.repeat(batch)))
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      step()
      times.append(time.perf_counter() - start)
  tf_keras_clear()
  return first, statistics.median(times)


def tf_keras_clear():
  import tf_keras  # pylint: disable=g-import-not-at-top
  tf_keras.backend.clear_session()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--models', nargs='+', choices=sorted(MODELS),
                      default=['max_s', 'cmt_r50'])
  parser.add_argument('--crops', nargs='+', type=int, default=[321, 641])
  parser.add_argument('--xla', nargs='+', choices=['off', 'on'],
                      default=['off', 'on'])
  parser.add_argument('--steps', type=int, default=5,
                      help='timed steps after the first')
  parser.add_argument('--budget_seconds', type=float, default=1800)
  args = parser.parse_args(argv)
  bad = [c for c in args.crops if c < 33 or (c - 1) % 4]
  if bad:
    parser.error(f'--crops must be 4k+1 >= 33, got {bad}')
  if args.steps < 1:
    parser.error('--steps must be >= 1')
  print(f'{"model":8s} {"crop":>5s} {"XLA":>4s} {"first step s":>13s} '
        f'{"step s (median)":>16s}', flush=True)
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as folder:
    for crop in args.crops:
      params = write_images(os.path.join(folder, str(crop)), crop)
      for model in args.models:
        for xla in args.xla:
          line = f'{model:8s} {crop:5d} {xla:>4s} '
          if time.perf_counter() - start > args.budget_seconds:
            print(line + f'{"skipped: over --budget_seconds":>30s}',
                  flush=True)
            continue
          first, step = time_setting(MODELS[model], crop, xla == 'on',
                                     params, args.steps)
          print(line + f'{first:13.1f} {step:16.3f}', flush=True)
  print(f'total {time.perf_counter() - start:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())

"""Times `cmt-import-deeplab2` on the FULL-SIZE MaX-DeepLab-S.

No full-size DeepLab2 checkpoint is stored here, so one is made first: a
randomly initialised full-size model of ours is written in DeepLab2's
trainer layout (every variable under its DeepLab2 name and shape, class
head in DeepLab2's order with the run-time void bias taken out: the
mapping of `cmt.deeplab2.names` run backwards). Then the conversion
runs as the command does (build, read, map, write) and the converted
variables are compared with the originals.

  python benchmarks/import_deeplab2_benchmark.py \
      [--config configs/coco/max_deeplab/max_deeplab_s_os16_res641_100k.textproto]
"""

import argparse
import math
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from cmt import config as config_lib
from cmt.data import dataset_info as dataset_info_lib
from cmt.deeplab2 import import_checkpoint as import_deeplab2
from cmt.deeplab2 import names as deeplab2_names
from cmt.model import builder
from cmt.trainer import checkpoints

PARAMS = {'INIT_CHECKPOINT': '', 'TRAIN_SET': '', 'VAL_SET': ''}


def to_deeplab2(path, value, info):
  """Our array -> DeepLab2's (the inverse of `deeplab2_names.conversion`)."""
  if 'center_heads/_class_head' in path:
    thing = [c for c in range(1, info.num_classes + 1) if info.is_thing(c)]
    stuff = [c for c in range(1, info.num_classes + 1)
             if not info.is_thing(c)]
    order = np.asarray(deeplab2_names.class_channel_order(thing, stuff))
    inverse = np.argsort(order)
    if path.endswith('kernel'):
      return value[:, inverse][None]
    value = value[inverse].astype(np.float64)
    value[-1] -= math.log((len(order) - 1) * deeplab2_names.DEEPLAB2_VOID_PRIOR
                          / (1 - deeplab2_names.DEEPLAB2_VOID_PRIOR))
    return value.astype(np.float32)
  if path.endswith('memory_feature') or '/_dense/kernel' in path:
    return value[None]
  return value


def write_deeplab2_layout(model, info, prefix):
  """Our model's weights under DeepLab2's names (nested tf.Modules)."""
  pairs = []
  checkpoints._walk(None, None, model, ['model'], set(), pairs)  # pylint: disable=protected-access
  root = {}
  for path, variable, _ in pairs:
    name = deeplab2_names.deeplab2_name(path)
    node = root
    *parents, leaf = name.split('/')
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = tf.Variable(to_deeplab2(path, variable.numpy(), info))

  def module(tree):
    m = tf.Module()
    for key, child in tree.items():
      setattr(m, key, module(child) if isinstance(child, dict) else child)
    return m
  items = {key: module(child) for key, child in root.items()}
  items['global_step'] = tf.Variable(100000, dtype=tf.int64)
  return tf.train.Checkpoint(**items).write(prefix), len(pairs)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--config', default='configs/coco/max_deeplab/'
                      'max_deeplab_s_os16_res641_100k.textproto')
  args = parser.parse_args()
  options = config_lib.load_config(args.config, params=PARAMS)
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  tf.keras.utils.set_random_seed(0)
  start = time.perf_counter()
  source = builder.build_and_initialise(options, info)
  build_seconds = time.perf_counter() - start
  params = sum(int(np.prod(v.shape)) for v in source.variables)
  with tempfile.TemporaryDirectory() as work:
    prefix, count = write_deeplab2_layout(source, info,
                                          os.path.join(work, 'dl2', 'ckpt-1'))
    size = sum(os.path.getsize(os.path.join(work, 'dl2', f))
               for f in os.listdir(os.path.join(work, 'dl2')))
    start = time.perf_counter()
    plan = import_deeplab2.convert(options, prefix,
                                   os.path.join(work, 'ours'),
                                   print_fn=lambda line: None)
    convert_seconds = time.perf_counter() - start
    converted = builder.build_and_initialise(options, info)
    status = tf.train.Checkpoint(model=converted).read(
        tf.train.latest_checkpoint(os.path.join(work, 'ours')))
    status.expect_partial()  # save_counter
    status.assert_existing_objects_matched()
    worst = max(float(np.abs(a.numpy() - b.numpy()).max())
                for a, b in zip(source.variables, converted.variables))
  print(f'config: {args.config}')
  print(f'model: {count} variables, {params:,} values, DeepLab2-layout '
        f'checkpoint {size / 2**20:.0f} MiB')
  print(f'mapped {len(plan.mapped)}, left at initialisation '
        f'{len(plan.left_at_init)}, DeepLab2 variables unused '
        f'{len(plan.unused)}')
  print(f'building the model alone: {build_seconds:.1f} s')
  print(f'cmt-import-deeplab2 (build + read + map + write): '
        f'{convert_seconds:.1f} s')
  print(f'largest difference converted vs original: {worst:.3g}')


if __name__ == '__main__':
  main()

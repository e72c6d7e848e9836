"""Forward cost of each CMT-DeepLab switch, relative to MaX-DeepLab-S.

Times the model's inference forward pass in graph mode (the faster mode on
CPU; see DESIGN.md) for the Table 2c variants at a reduced width, and prints
the median time of each variant and its ratio to the baseline within this
one run.

    python benchmarks/model_forward_benchmark.py [--crop 129] \
        [--width 0.25] [--repeats 5]
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from cmt import config
from cmt.data import dataset_info as dataset_info_lib
from cmt.model import builder

BASELINE = 'configs/coco/max_deeplab/max_deeplab_s_gelu_res641_100k.textproto'
CLUSTERING = ('model_options.clustering.clustering_update=true',)
LOCATION = ('model_options.clustering.reference_mask=true',
            'model_options.clustering.coord_conv=true')
DECODER = ('model_options.backbone.dual_path_in_backbone=false',
           'model_options.decoder.transformer_stages[0].backbone_stage=5',
           'model_options.decoder.transformer_stages[0].num_blocks=3',
           'model_options.decoder.transformer_stages[1].backbone_stage=4',
           'model_options.decoder.transformer_stages[1].num_blocks=3')
VARIANTS = {
    'baseline (MaX-S)': (),
    '+ clustering update': CLUSTERING,
    '+ location': LOCATION,
    '+ stronger decoder': DECODER,
    'CMT-DeepLab (all)': CLUSTERING + LOCATION + DECODER,
}


def median_forward_seconds(overrides, crop, repeats):
  params = {'INIT_CHECKPOINT': '', 'TRAIN_SET': '', 'VAL_SET': ''}
  options = config.load_config(BASELINE, params=params, overrides=overrides)
  model = builder.build_model(options, dataset_info_lib.COCO_PANOPTIC)
  forward = tf.function(lambda x: model(x, training=False))
  images = tf.random.uniform([1, crop, crop, 3], 0, 255, seed=0)
  forward(images)  # trace and build
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), forward(images))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--crop', type=int, default=129)
  parser.add_argument('--width', type=float, default=0.25,
                      help='backbone.width_multiplier')
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args(argv)
  width = (f'model_options.backbone.width_multiplier={args.width}',)
  results = {name: median_forward_seconds(width + overrides, args.crop,
                                          args.repeats)
             for name, overrides in VARIANTS.items()}
  base = results['baseline (MaX-S)']
  print(f'crop {args.crop}, width x{args.width}, median of {args.repeats}')
  for name, seconds in results.items():
    print(f'{name:22s} {seconds * 1e3:9.1f} ms  x{seconds / base:5.2f}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())

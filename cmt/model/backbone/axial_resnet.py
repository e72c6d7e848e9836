"""Axial-ResNet (Axial-DeepLab): ResNet-beta with axial-attention blocks.

Stem: three 3x3 convolutions (stride 2). Stages 2-5 hold bottleneck blocks
of width 64, 128, 256, 512 (x `width_multiplier`; outputs 4x that), each
starting with stride 2. Blocks whose stride reaches `use_axial_beyond_stride`
(16) replace the 3x3 convolution by height/width axial attention. With
output stride 16, stage 5 keeps stride 16 (its convolutions, if any, are
dilated). Axial-ResNet-50 has [3, 4, 6, 3] blocks, Axial-ResNet-104
[3, 4, 24, 3].

Endpoints (pre-activation outputs) 'stage1' .. 'stage5' at strides 2, 4, 8,
16 and 16 or 32. A block hook lets the meta-architecture insert dual-path
transformer layers after blocks (MaX-DeepLab-S puts one after every stage-5
block); those layers are not part of the backbone and not pretrained.
"""

import math
from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf
import tf_keras

from cmt import model_checks
from cmt.model.layers import blocks
from cmt.model.layers import norm_act
from cmt.model.layers import recompute
from cmt.protos import model_pb2

# Shared with the config checks (cmt.model_checks), which predict the shapes.
BLOCKS_PER_STAGE = model_checks.BLOCKS_PER_STAGE
BASE_FILTERS = model_checks.BASE_FILTERS
# Stochastic depth is applied to blocks at stride >= 16 only (MaX-DeepLab).
DROP_PATH_BEYOND_STRIDE = 16

# hook(stage, block_index, features, training) -> features
BlockHook = Callable[[int, int, tf.Tensor, bool], tf.Tensor]


scaled = model_checks.scaled


# The block counts and stem width the config checks predict, stated once.
num_blocks_from_options = model_checks.num_blocks_from_options
stem_width_multiplier = model_checks.stem_width_multiplier


class AxialResNet(tf_keras.layers.Layer):
  """The backbone; `call` returns the endpoints dict."""

  def __init__(self, backbone_options, norm: norm_act.NormConfig,
               name: str = 'backbone'):
    super().__init__(name=name)
    options = backbone_options  # Checked by `model_checks.check_model`.
    axial_stride = options.use_axial_beyond_stride
    activation = options.activation
    stem_width = stem_width_multiplier(options)
    self.stem = blocks.InceptionStem(norm, activation, stem_width)
    self.stages = []
    input_stride = 2  # Stride of the stem output.
    for stage_index, (filters, count) in enumerate(
        zip(BASE_FILTERS, num_blocks_from_options(options))):
      stage = stage_index + 2
      filters = scaled(filters, options.width_multiplier)
      stage_blocks = []
      current = input_stride  # The stride a plain ResNet would have.
      for index in range(count):
        if index == 0:
          strides = 2 if current < options.output_stride else 1
        else:
          strides = 1
        dilation = max(1, current // options.output_stride)
        if current >= DROP_PATH_BEYOND_STRIDE:
          drop = norm_act.drop_path_rate(
              options.drop_path_rate, options.drop_path_schedule,
              stage=int(round(math.log2(current))) - 1)
        else:
          drop = 0.0
        stage_blocks.append(blocks.ResidualBlock(
            filters, f'stage{stage}_block{index + 1}', norm, activation,
            axial=0 < axial_stride <= current, strides=strides,
            dilation=dilation, drop_rate=drop,
            query_region=options.axial_query_region))
        if index == 0:
          current *= 2
      self.stages.append(stage_blocks)
      input_stride *= 2

  def call(self, images, training=False,
           block_hook: Optional[BlockHook] = None,
           stage2_addend: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
    """Args:
      images: [B, H, W, 3] already normalised.
      block_hook: called after every block (transformer insertion).
      stage2_addend: added to the stage-2 output (the stride-4 connection of
        the Recursive Feature Network).
    """
    x = self.stem(images, training=training)
    endpoints = {'stage1': x}
    for stage_index, stage_blocks in enumerate(self.stages):
      stage = stage_index + 2
      for index, block in enumerate(stage_blocks):
        x = recompute.call(block, x, training)
        if block_hook is not None:
          x = block_hook(stage, index, x, training)
      if stage == 2 and stage2_addend is not None:
        x = x + stage2_addend
      endpoints[f'stage{stage}'] = x
    return endpoints

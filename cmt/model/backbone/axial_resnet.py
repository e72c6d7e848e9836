"""Axial-ResNet (Axial-DeepLab): ResNet-beta with axial-attention blocks.

Stem: three 3x3 convolutions (stride 2). Stages 2-5 hold bottleneck blocks
of width 64, 128, 256, 512 (x `width_multiplier`; outputs 4x that), each
starting with stride 2. Blocks whose stride reaches `use_axial_beyond_stride`
(16) replace the 3x3 convolution by height/width axial attention. With
output stride 16, stage 5 keeps stride 16 (its convolutions, if any, are
dilated). Axial-ResNet-50 has [3, 4, 6, 3] blocks, Axial-ResNet-104
[3, 4, 24, 3]. The layout (widths, strides, dilations, drop-path rates) is
`cmt.model.spec.BackboneSpec`'s; this layer builds what it lists.

Endpoints (pre-activation outputs) 'stage1' .. 'stage5' at strides 2, 4, 8,
16 and 16 or 32. A block hook lets the meta-architecture insert dual-path
transformer layers after blocks (MaX-DeepLab-S puts one after every stage-5
block); those layers are not part of the backbone and not pretrained.
"""

from typing import Dict, Optional

import tensorflow as tf
import tf_keras

from cmt.model import spec
from cmt.model.backbone import contract
from cmt.model.layers import blocks
from cmt.model.layers import norm_act


class AxialResNet(tf_keras.layers.Layer):
  """The backbone (`contract.Backbone`); `call` returns the endpoints."""

  def __init__(self, backbone: spec.BackboneSpec, norm: norm_act.NormConfig,
               name: str = 'backbone'):
    super().__init__(name=name)
    self.spec = backbone
    self.stem = blocks.InceptionStem(norm, backbone.activation,
                                     backbone.stem_width_multiplier)
    self.stages = [
        [blocks.ResidualBlock(
            block.filters, block.name, norm, backbone.activation,
            axial=block.axial, strides=block.strides,
            dilation=block.dilation, drop_rate=block.drop_rate,
            num_heads=backbone.axial_heads,
            query_region=backbone.axial_query_region,
            recompute=block.recompute)
         for block in stage]
        for stage in backbone.stages]

  def call(self, images, training=False,
           block_hook: Optional[contract.BlockHook] = None,
           stage2_addend: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
    """Args:
      images: [B, H, W, 3] already normalised.
      block_hook: called after every block (transformer insertion).
      stage2_addend: added to the stage-2 output (the stride-4 connection of
        the Recursive Feature Network).
    """
    x = self.stem(images, training=training)
    endpoints = {'stage1': x}
    for stage, stage_blocks in enumerate(self.stages, start=2):
      for index, block in enumerate(stage_blocks):
        x = block(x, training=training)
        if block_hook is not None:
          x = block_hook(stage, index, x, training)
      if stage == 2 and stage2_addend is not None:
        x = x + stage2_addend
      endpoints[f'stage{stage}'] = x
    return endpoints

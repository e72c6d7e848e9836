"""The transformer stages after the backbone and the decoder to stride 4 or 8.

MaX-DeepLab-S (`decoder.transformer_stages` empty): one more axial block of
stage-5 width with a dual-path transformer layer (DeepLab2's "extra" stage 5)
after the backbone, whose stage-5 blocks carry transformer layers too
(`backbone.dual_path_in_backbone`).

CMT-DeepLab's stronger decoder (Sec. 3.4): the listed stages, e.g. three
dual-path axial blocks at stage-5 width (2048) then three at stage-4 width
(1024), each block followed by a transformer layer. Entering a stage of
another width fuses the current features with the backbone endpoint of that
stage (`ResizedFuse`).

Then the decoder upsamples to `high_resolution_output_stride` (4): at each
stride s it fuses the current features with the backbone endpoint at s
(channels 64 s) and applies one bottleneck block.
"""

import math
from typing import Sequence

import tensorflow as tf
import tf_keras

from cmt.model import spec
from cmt.model.layers import blocks
from cmt.model.layers import norm_act
from cmt.model.layers import recompute as recompute_lib


class ResizedFuse(recompute_lib.Block):
  """Sum of features brought to one resolution and width: a feature with the
  target width is only resized (bilinear, aligned corners); another is
  activated, projected by a 1x1 conv + BN, then resized."""

  def __init__(self, channels: int, name: str, norm: norm_act.NormConfig,
               activation, recompute: bool = False):
    super().__init__(name=name, recompute=recompute)
    self.channels = channels
    self._norm = norm
    self._activation = norm_act.get_activation(activation)

  def build(self, input_shapes):
    self._projections = []
    for index, shape in enumerate(input_shapes):
      if shape[-1] == self.channels:
        self._projections.append(None)
      else:
        self._projections.append(norm_act.ConvNormAct(
            self.channels, 1, f'resized_conv_bn{index + 1}', self._norm, None))

  def call(self, features: Sequence[tf.Tensor], training=False):
    size = features[-1].shape[1:3]
    fused = []
    for feature, projection in zip(features, self._projections):
      if projection is not None:
        feature = projection(self._activation(feature), training=training)
      fused.append(norm_act.resize_align_corners(feature, size))
    return tf.add_n(fused)


class UpsamplingDecoder(tf_keras.layers.Layer):
  """From the output stride down to `high_resolution_output_stride` (4 or
  8): per stride, fuse with the backbone endpoint, then one bottleneck block."""

  def __init__(self, decoder: spec.DecoderSpec, norm: norm_act.NormConfig,
               name: str = 'decoder'):
    super().__init__(name=name)
    self._strides = decoder.strides
    self._fuses = []
    self._blocks = []
    for stride, channels in zip(decoder.strides, decoder.channels):
      self._fuses.append(ResizedFuse(
          channels, f'stride{stride}_fuse', norm, decoder.activation,
          recompute=decoder.recompute))
      self._blocks.append(blocks.ResidualBlock(
          channels // 4, f'stride{stride}_block', norm, decoder.activation,
          recompute=decoder.recompute))

  def call(self, x, endpoints, training=False):
    for stride, fuse, block in zip(self._strides, self._fuses, self._blocks):
      stage = int(math.log2(stride))  # stride 8 -> 'stage3'
      x = fuse([x, endpoints[f'stage{stage}']], training=training)
      x = block(x, training=training)
    return x

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
from typing import List, Sequence

import tensorflow as tf
import tf_keras

from cmt.model.backbone import axial_resnet
from cmt.model.layers import blocks
from cmt.model.layers import norm_act
from cmt.model.layers import recompute


class ResizedFuse(tf_keras.layers.Layer):
  """Sum of features brought to one resolution and width: a feature with the
  target width is only resized (bilinear, aligned corners); another is
  activated, projected by a 1x1 conv + BN, then resized."""

  def __init__(self, channels: int, name: str, norm: norm_act.NormConfig,
               activation):
    super().__init__(name=name)
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


def upsampling_strides(output_stride: int, high_resolution_stride: int
                       ) -> List[int]:
  """Strides the decoder visits after the backbone (16 -> [8, 4])."""
  if high_resolution_stride not in (4, 8) or high_resolution_stride > (
      output_stride):
    raise ValueError('model_options.decoder.high_resolution_output_stride '
                     f'must be 4 or 8 (and <= the output stride); got '
                     f'{high_resolution_stride}')
  strides = []
  stride = output_stride // 2
  while stride >= high_resolution_stride:
    strides.append(stride)
    stride //= 2
  return strides


class UpsamplingDecoder(tf_keras.layers.Layer):
  """From the output stride down to `high_resolution_output_stride` (4 or
  8): per stride, fuse with the backbone endpoint, then one bottleneck block."""

  def __init__(self, output_stride: int, high_resolution_stride: int,
               width_multiplier: float, norm: norm_act.NormConfig,
               activation, name: str = 'decoder'):
    super().__init__(name=name)
    self._strides = upsampling_strides(output_stride, high_resolution_stride)
    self._fuses = []
    self._blocks = []
    for stride in self._strides:
      channels = axial_resnet.scaled(64 * stride, width_multiplier)
      self._fuses.append(ResizedFuse(channels, f'stride{stride}_fuse', norm,
                                     activation))
      self._blocks.append(blocks.ResidualBlock(
          channels // 4, f'stride{stride}_block', norm, activation))

  @property
  def stage_layers(self):
    return self._fuses + self._blocks

  def call(self, x, endpoints, training=False):
    for stride, fuse, block in zip(self._strides, self._fuses, self._blocks):
      stage = int(math.log2(stride))  # stride 8 -> 'stage3'
      x = recompute.call(fuse, [x, endpoints[f'stage{stage}']], training)
      x = recompute.call(block, x, training)
    return x

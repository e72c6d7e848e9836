"""Residual blocks and the stem of Axial-ResNet (ResNet-beta).

`ResidualBlock` is the bottleneck of ResNet (1x1 -> 3x3 -> 1x1) or, with
`axial=True`, the axial block of Axial-DeepLab (1x1 -> height/width axial
attention -> 1x1). Blocks take the *pre-activation* output of the previous
block and return a pre-activation output: x_out = shortcut(act(x)) +
drop_path(BN_0(conv3(...))), where BN_0 has gamma initialised to zero so that
every block starts as an identity (Goyal et al., 2017).
"""

import tensorflow as tf
import tf_keras

from cmt.model import spec
from cmt.model.layers import axial_attention
from cmt.model.layers import norm_act
from cmt.model.layers import recompute as recompute_lib


class InceptionStem(tf_keras.layers.Layer):
  """Three 3x3 convolutions (stride 2, 1, 1) with 64, 64, 128 channels; the
  last has no activation (the first block applies it)."""

  def __init__(self, norm: norm_act.NormConfig, activation,
               width_multiplier: float = 1.0, name: str = 'stem'):
    super().__init__(name=name)
    narrow = max(1, int(64 * width_multiplier))
    wide = max(1, int(128 * width_multiplier))
    self._convs = [
        norm_act.ConvNormAct(narrow, 3, 'conv1_bn_act', norm, activation,
                             strides=2),
        norm_act.ConvNormAct(narrow, 3, 'conv2_bn_act', norm, activation),
        norm_act.ConvNormAct(wide, 3, 'conv3_bn', norm, None),
    ]

  def call(self, x, training=False):
    for conv in self._convs:
      x = conv(x, training=training)
    return x


class ResidualBlock(recompute_lib.Block):
  """Bottleneck or axial residual block.

  Args:
    filters: the bottleneck width F; outputs 4F channels. The axial block
      widens its first 1x1 to 2F and its attention values to 2F as in
      Axial-ResNet.
    axial: replace the 3x3 convolution by 2D axial attention.
    strides: applied in the 3x3 convolution / attention and the shortcut.
    drop_rate: stochastic-depth rate of the residual branch.
    recompute: run the forward again in the backward pass
      (`recompute_lib.Block`).
  """

  def __init__(self, filters: int, name: str, norm: norm_act.NormConfig,
               activation, axial: bool = False, strides: int = 1,
               dilation: int = 1, drop_rate: float = 0.0,
               num_heads: int = spec.AXIAL_HEADS, query_region: int = 129,
               recompute: bool = False):
    super().__init__(name=name, recompute=recompute)
    self._strides = strides
    self.axial = axial
    self.drop_rate = drop_rate
    self._activation = norm_act.get_activation(activation)
    self.output_channels = 4 * filters
    self._norm = norm
    if axial:
      self._conv1 = norm_act.ConvNormAct(2 * filters, 1, 'conv1_bn_act', norm,
                                         activation)
      self._spatial = axial_attention.AxialAttention2D(
          filters, 'attention', norm, num_heads=num_heads, strides=strides,
          query_region=query_region)
      spatial_activation = self._activation
    else:
      self._conv1 = norm_act.ConvNormAct(filters, 1, 'conv1_bn_act', norm,
                                         activation)
      self._spatial = norm_act.ConvNormAct(filters, 3, 'conv2_bn_act', norm,
                                           activation, strides=strides,
                                           dilation=dilation)
      spatial_activation = tf.identity
    self._spatial_activation = spatial_activation
    self._conv3 = norm_act.ConvNormAct(self.output_channels, 1, 'conv3_bn',
                                       norm, None, gamma_initializer='zeros')

  def build(self, input_shape):
    self._shortcut = None
    if input_shape[-1] != self.output_channels:
      self._shortcut = norm_act.ConvNormAct(
          self.output_channels, 1, 'shortcut', self._norm, None,
          strides=self._strides)

  def call(self, x, training=False):
    x = self._activation(x)
    if self._shortcut is not None:
      shortcut = self._shortcut(x, training=training)
    elif self._strides > 1:
      shortcut = x[:, ::self._strides, ::self._strides]
    else:
      shortcut = x
    y = self._conv1(x, training=training)
    y = self._spatial_activation(self._spatial(y, training=training))
    y = self._conv3(y, training=training)
    return shortcut + norm_act.maybe_drop_path(y, self.drop_rate, training)

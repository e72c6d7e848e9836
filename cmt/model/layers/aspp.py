"""Atrous Spatial Pyramid Pooling (DeepLabv3), as DeepLab2's auxiliary
semantic decoder of MaX-DeepLab uses it.

Five branches on the same features x [B, h, w, C], each conv + BN + act to
`channels`: a 1x1 conv, three 3x3 convs with atrous rates r1, r2, r3 (6, 12,
18), and image pooling (the mean of x over h, w, a 1x1 conv, broadcast back
to h x w). Their concatenation is projected by a 1x1 conv + BN + act, with
dropout 0.1 in training.

Image pooling is global. DeepLab2 pools over the train crop / output stride
(tiled average pooling); at the train crop that window is the whole feature
map, so both agree whenever evaluation runs at the train crop.
"""

from typing import Sequence

import tensorflow as tf
import tf_keras

from cmt.model.layers import norm_act

_DROPOUT = 0.1


class ASPP(tf_keras.layers.Layer):
  """[B, h, w, C] -> [B, h, w, channels]."""

  def __init__(self, channels: int, atrous_rates: Sequence[int],
               norm: norm_act.NormConfig, activation, name: str = 'aspp'):
    super().__init__(name=name)
    self._conv = norm_act.ConvNormAct(channels, 1, 'conv_bn_act', norm,
                                      activation)
    self._atrous_convs = [
        norm_act.ConvNormAct(channels, 3, f'atrous_conv{index + 1}_bn_act',
                             norm, activation, dilation=rate)
        for index, rate in enumerate(atrous_rates)]
    self._pool_conv = norm_act.ConvNormAct(channels, 1, 'pool_conv_bn_act',
                                           norm, activation)
    self._projection = norm_act.ConvNormAct(channels, 1, 'projection_bn_act',
                                            norm, activation)
    self._dropout = tf_keras.layers.Dropout(_DROPOUT)

  def call(self, x, training=False):
    branches = [self._conv(x, training=training)]
    branches += [conv(x, training=training) for conv in self._atrous_convs]
    pooled = self._pool_conv(tf.reduce_mean(x, axis=[1, 2], keepdims=True),
                             training=training)
    branches.append(tf.broadcast_to(
        pooled, tf.concat([tf.shape(x)[:3], tf.shape(pooled)[3:]], 0)))
    x = self._projection(tf.concat(branches, axis=-1), training=training)
    return self._dropout(x, training=training)

"""Normalisation, activation and convolution building blocks.

Every convolution in MaX-DeepLab / CMT-DeepLab is bias-free and followed by a
BatchNorm (optionally synchronised across replicas) and optionally an
activation; `NormConfig` builds the BatchNorms of every layer with the
settings of `cmt.model.spec.NormSpec`.
"""

import dataclasses
from typing import Callable, Optional, Sequence, Union

import tensorflow as tf
import tf_keras

from cmt.model import spec
from cmt.model.layers import recompute

Axis = Union[int, Sequence[int]]


def get_activation(activation: Optional[str]
                   ) -> Callable[[tf.Tensor], tf.Tensor]:
  """'relu' / 'gelu' / 'none' or None (the spec's names) -> function."""
  if activation == 'relu':
    return tf.nn.relu
  if activation == 'gelu':
    return gelu
  if activation in (None, 'none'):
    return tf.identity
  raise ValueError(
      f'model_options.backbone.activation: unsupported value {activation!r} '
      '(use RELU or GELU)')


_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@tf.custom_gradient
def gelu(x):
  """Exact GeLU, x Phi(x) (`tf.nn.gelu(approximate=False)`), whose backward
  pass keeps only x. Differentiating the composed op instead keeps three
  more activation-sized tensors per call (0.5 x, -x / sqrt 2 and its erfc);
  the derivative Phi(x) + x phi(x) is recomputed from x."""
  def grad(dy):
    cdf = 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))
    pdf = _INV_SQRT_2PI * tf.exp(-0.5 * tf.square(x))
    return dy * (cdf + x * pdf)
  return tf.nn.gelu(x, approximate=False), grad


@dataclasses.dataclass(frozen=True)
class NormConfig(spec.NormSpec):
  """`spec.NormSpec`'s settings as the BatchNorm factory of the layers:
  `norm(name, axis, gamma_initializer)` -> a BatchNorm layer."""

  @classmethod
  def of(cls, settings: spec.NormSpec) -> 'NormConfig':
    return cls(**dataclasses.asdict(settings))

  def __call__(self, name: str, axis: Axis = -1,
               gamma_initializer='ones') -> tf_keras.layers.Layer:
    return recompute.BatchNormalization(
        axis=axis, momentum=self.momentum, epsilon=self.epsilon,
        gamma_initializer=gamma_initializer, synchronized=self.synchronized,
        name=name)


class ConvNormAct(tf_keras.layers.Layer):
  """2D convolution (no bias, 'same' padding, optional stride / dilation or
  depthwise) -> BatchNorm -> activation.

  Padding is symmetric so that a crop of 4k + 1 maps to 2k + 1 under
  stride 2 (the 'same' arithmetic of DeepLab). At stride 1 with an odd
  kernel, the convolution's own 'same' padding is that symmetric padding,
  and unlike an explicit `tf.pad` it keeps no padded copy of the input for
  the backward pass; a strided convolution pads explicitly.
  """

  def __init__(self, filters: int, kernel_size: int, name: str,
               norm: NormConfig, activation=None, strides: int = 1,
               dilation: int = 1, depthwise: bool = False,
               gamma_initializer='ones', kernel_initializer='he_normal'):
    super().__init__(name=name)
    pad_inside = strides == 1 and kernel_size % 2 == 1
    self._pad = 0 if pad_inside else (kernel_size - 1) * dilation // 2
    padding = 'same' if pad_inside else 'valid'
    if depthwise:
      self._conv = tf_keras.layers.DepthwiseConv2D(
          kernel_size, strides=strides, dilation_rate=dilation,
          padding=padding, use_bias=False,
          depthwise_initializer=kernel_initializer, name='depthwise')
    else:
      self._conv = tf_keras.layers.Conv2D(
          filters, kernel_size, strides=strides, dilation_rate=dilation,
          padding=padding, use_bias=False,
          kernel_initializer=kernel_initializer, name='conv')
    self._norm = norm('batch_norm', gamma_initializer=gamma_initializer)
    self._activation = get_activation(activation)

  def call(self, x, training=False):
    if self._pad:
      p = self._pad
      x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
    x = self._conv(x)
    return self._activation(self._norm(x, training=training))


class ScalarBatchNorm(tf_keras.layers.Layer):
  """A BatchNorm with one (gamma, beta) shared by every entry of a tensor, so
  it adds no per-slot bias (used on assignment and mask logits)."""

  def __init__(self, name: str, norm: NormConfig,
               gamma_initializer='ones'):
    super().__init__(name=name)
    self._norm = norm('batch_norm', gamma_initializer=gamma_initializer)

  def call(self, x, training=False):
    return tf.squeeze(self._norm(x[..., None], training=training), axis=-1)


class Dense1DNormAct(tf_keras.layers.Layer):
  """A 1x1 convolution on [B, L, C] sequences (no bias) -> BatchNorm ->
  activation; the projections of the memory (cluster-center) path.

  `gamma_initializer='zeros'` makes a residual branch start as identity.
  """

  def __init__(self, filters: int, name: str, norm: NormConfig,
               activation=None, gamma_initializer='ones',
               kernel_initializer='he_normal'):
    super().__init__(name=name)
    self._dense = tf_keras.layers.Dense(
        filters, use_bias=False, kernel_initializer=kernel_initializer,
        name='kernel')
    self._norm = norm('batch_norm', gamma_initializer=gamma_initializer)
    self._activation = get_activation(activation)

  def call(self, x, training=False):
    return self._activation(self._norm(self._dense(x), training=training))


def resize_align_corners(x: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """Bilinear resize with aligned corners: a 4k+1 grid maps exactly onto the
  (2k+1) grid of the next stride, as DeepLab's decoders assume."""
  if tuple(x.shape[1:3]) == tuple(size):
    return x
  resized = tf.raw_ops.ResizeBilinear(images=x, size=list(size),
                                      align_corners=True)
  return tf.cast(resized, x.dtype)  # the op returns float32 for bfloat16


def maybe_drop_path(x: tf.Tensor, drop_rate: float, training) -> tf.Tensor:
  """Stochastic depth: zeroes a residual branch per example with probability
  `drop_rate` and rescales the survivors by 1 / (1 - drop_rate). Inside a
  block's call (`recompute.Block`) the mask is stateless, from the block's
  seed."""
  if not training or drop_rate <= 0.0:
    return x
  keep = 1.0 - drop_rate
  shape = [tf.shape(x)[0]] + [1] * (x.shape.rank - 1)
  mask = tf.floor(keep + recompute.uniform_for_drop_path(shape, x.dtype))
  return x * mask / keep

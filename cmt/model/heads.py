"""Prediction heads of MaX-DeepLab / CMT-DeepLab.

* Pixel-space head: 5x5 depthwise-separable conv, 1x1 conv to D, BatchNorm,
  L2 normalisation -> F, the pixel features of Eq. 4.
* Center heads: class feature and mask feature (1x1 conv + BN + act each)
  from the cluster centers; class head (biased linear layer, void prior) and
  mask embedding (1x1 conv + BN).
* Mask logits, Eq. 4 before softmax_N: BN(F x C_mask^T) with one shared
  BatchNorm (gamma initialised to 0.1).
* Auxiliary semantic decoder + head, DeepLab2's (ASPP, two low-level
  fusions; training only; 'auxiliary_semantic' in every variable name so
  parameter counts can exclude it).

Initialisation follows DeepLab2: the last layer of the semantic head
(`PanopticDeepLabSingleHead.final_conv`) and the class head start from a
truncated normal with standard deviation 0.01, the usual classifier start,
so the initial logits are small.
"""

import math

import tensorflow as tf
import tf_keras

from cmt.model import spec
from cmt.model.layers import aspp
from cmt.model.layers import norm_act

AUXILIARY_SEMANTIC = 'auxiliary_semantic'


def classifier_initializer():
  """DeepLab2's start for a layer that outputs class logits: truncated
  normal, standard deviation 0.01."""
  return tf_keras.initializers.TruncatedNormal(stddev=0.01)


class SeparableConv(tf_keras.layers.Layer):
  """5x5 depthwise conv + BN + act, then 1x1 conv + BN + act."""

  def __init__(self, outputs: int, name: str, norm: norm_act.NormConfig,
               activation):
    super().__init__(name=name)
    self._depthwise = norm_act.ConvNormAct(None, 5, 'depthwise_bn_act', norm,
                                           activation, depthwise=True)
    self._pointwise = norm_act.ConvNormAct(outputs, 1, 'pointwise_bn_act',
                                           norm, activation)

  def call(self, x, training=False):
    return self._pointwise(self._depthwise(x, training=training),
                           training=training)


class SeparableConvHead(tf_keras.layers.Layer):
  """`SeparableConv` to `hidden` channels, then a 1x1 biased conv."""

  def __init__(self, hidden: int, outputs: int, name: str,
               norm: norm_act.NormConfig, activation,
               output_initializer='he_normal'):
    super().__init__(name=name)
    self._separable = SeparableConv(hidden, 'separable', norm, activation)
    self._output = tf_keras.layers.Conv2D(
        outputs, 1, kernel_initializer=output_initializer, name='final_conv')

  def call(self, x, training=False):
    return self._output(self._separable(x, training=training))


class PixelSpaceHead(tf_keras.layers.Layer):
  """Pixel features F [B, h, w, D], L2-normalised along D."""

  def __init__(self, hidden: int, outputs: int, norm: norm_act.NormConfig,
               activation, name: str = 'pixel_space_head'):
    super().__init__(name=name)
    self._head = SeparableConvHead(hidden, outputs, 'head', norm, activation)
    self._norm = norm('pixel_space_feature_bn')

  def call(self, x, training=False):
    x = self._norm(self._head(x, training=training), training=training)
    return tf.math.l2_normalize(x, axis=-1)


def void_prior_bias(num_classes_with_void: int, void_prior: float):
  """Initial class bias so that softmax gives void (index 0) probability
  `void_prior` and the other classes share the rest (focal-loss style)."""
  bias = [0.0] * num_classes_with_void
  bias[0] = math.log((num_classes_with_void - 1) * void_prior /
                     (1.0 - void_prior))
  return tf_keras.initializers.Constant(bias)


class CenterHeads(tf_keras.layers.Layer):
  """Class logits [B, N, C + 1] and mask embeddings [B, N, D] of centers."""

  def __init__(self, feature_channels: int, mask_channels: int,
               num_classes: int, void_prior: float,
               norm: norm_act.NormConfig, activation,
               name: str = 'center_heads'):
    super().__init__(name=name)
    self._class_feature = norm_act.Dense1DNormAct(
        feature_channels, 'class_feature_bn_act', norm, activation)
    self._mask_feature = norm_act.Dense1DNormAct(
        feature_channels, 'mask_feature_bn_act', norm, activation)
    self._class_head = tf_keras.layers.Dense(
        num_classes + 1, kernel_initializer=classifier_initializer(),
        bias_initializer=void_prior_bias(num_classes + 1, void_prior),
        name='class_head')
    self._mask_head = norm_act.Dense1DNormAct(mask_channels, 'mask_head_bn',
                                              norm, None)

  def class_logits(self, centers, training=False):
    return self._class_head(self._class_feature(centers, training=training))

  def call(self, centers, training=False):
    class_logits = self.class_logits(centers, training=training)
    mask_embedding = self._mask_head(
        self._mask_feature(centers, training=training), training=training)
    return class_logits, mask_embedding


class MaskLogits(tf_keras.layers.Layer):
  """Eq. 4 logits: BN(F x C^T) -> [B, h, w, N]; softmax_N gives Z."""

  def __init__(self, norm: norm_act.NormConfig, gamma: float,
               name: str = 'mask_logits'):
    super().__init__(name=name)
    self._norm = norm_act.ScalarBatchNorm(
        'mask_logits_bn', norm,
        gamma_initializer=tf_keras.initializers.Constant(gamma))

  def call(self, pixel_features, mask_embedding, training=False):
    logits = tf.einsum('bhwd,bnd->bhwn', pixel_features, mask_embedding)
    return self._norm(logits, training=training)


class AuxiliarySemanticHead(tf_keras.layers.Layer):
  """Training-only semantic logits [B, h, w, C + 1] at stride 4: DeepLab2's
  auxiliary semantic decoder and head of MaX-DeepLab.

  ASPP on the activated stride-16 backbone output (`aspp_channels`, rates
  6/12/18); then for res3 and res2 in turn: upsample (bilinear, aligned
  corners) to its resolution, concatenate its 1x1 projection (conv + BN +
  act, `res3/res2_projection_channels`) and fuse by a 5x5 depthwise-separable
  conv to `decoder_channels`; then a separable-conv head with
  `channels` hidden channels.
  """

  def __init__(self, channels: int, res3_channels: int, res2_channels: int,
               num_classes: int, norm: norm_act.NormConfig, activation,
               aspp_channels: int = 256,
               atrous_rates=spec.DEFAULT_ATROUS_RATES,
               decoder_channels: int = 256,
               name: str = AUXILIARY_SEMANTIC + '_head'):
    super().__init__(name=name)
    self._activation = norm_act.get_activation(activation)
    self._aspp = aspp.ASPP(aspp_channels, tuple(atrous_rates), norm,
                           activation)
    self._res3_projection = norm_act.ConvNormAct(
        res3_channels, 1, 'res3_projection', norm, activation)
    self._res2_projection = norm_act.ConvNormAct(
        res2_channels, 1, 'res2_projection', norm, activation)
    self._res3_fuse = SeparableConv(decoder_channels, 'res3_fuse', norm,
                                    activation)
    self._res2_fuse = SeparableConv(decoder_channels, 'res2_fuse', norm,
                                    activation)
    self._head = SeparableConvHead(channels, num_classes + 1, 'head', norm,
                                   activation,
                                   output_initializer=classifier_initializer())

  def call(self, backbone_output, res3, res2, training=False):
    x = self._aspp(self._activation(backbone_output), training=training)
    for low_level, projection, fuse in (
        (res3, self._res3_projection, self._res3_fuse),
        (res2, self._res2_projection, self._res2_fuse)):
      x = norm_act.resize_align_corners(x, low_level.shape[1:3])
      low = projection(self._activation(low_level), training=training)
      x = fuse(tf.concat([x, low], axis=-1), training=training)
    return self._head(x, training=training)

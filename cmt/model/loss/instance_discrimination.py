"""Instance discrimination on the pixel features F.

Two variants, chosen by `InstanceDiscriminationOptions.type`:

* MASK_CENTER (MaX-DeepLab): every ground-truth mask k gets a feature centre
  c_k = normalise(mean of F over the mask); each thing pixel is classified
  among the image's valid masks by softmax_k(f_p . c_k / tau), target its own
  mask.
* PIXEL_CONTRASTIVE (CMT-DeepLab, Eq. 14): sample a set A of pixels per
  image, biased towards small masks, and apply the supervised contrastive
  loss with multiple positives

      L = sum_{a in A} -1/|P(a)| sum_{p in P(a)}
              log( exp(f_a . f_p / tau) / sum_{b in A} exp(f_a . f_b / tau) ),

  P(a) being the sampled pixels of a's mask (a itself included). Thing and
  stuff pixels take part; void and crowd pixels are never sampled.

Both are averaged per image over the anchor pixels, counting only non-zero
terms as DeepLab2 does (`reduction.nonzero_mean`; 0 for an image without
any).
"""

import tensorflow as tf

from cmt.model.loss import strided_targets as gt_lib
from cmt.model.loss import reduction

# Pushes excluded entries out of a softmax without producing inf - inf.
_MASKED_LOGIT = -1e9


def _flatten_features(pixel_features: tf.Tensor) -> tf.Tensor:
  _, height, width, channels = pixel_features.shape
  return tf.reshape(tf.cast(pixel_features, tf.float32),
                    [-1, height * width, channels])


def mask_center_loss(pixel_features: tf.Tensor, targets: gt_lib.MaskTargets,
                     temperature: float) -> tf.Tensor:
  """[B] MaX-DeepLab's instance discrimination against mask feature centres.

  Args:
    pixel_features: [B, h, w, D] L2-normalised pixel features.
    targets: ground truth on the same h x w grid.
    temperature: tau.
  """
  features = _flatten_features(pixel_features)
  centers = tf.einsum('bpd,bpk->bkd', features, targets.one_hot) / tf.maximum(
      targets.area, 1.0)[..., tf.newaxis]
  centers = tf.math.l2_normalize(centers, axis=-1)
  logits = tf.einsum('bpd,bkd->bpk', features, centers) / temperature
  valid = targets.valid[:, tf.newaxis, :]
  logits = tf.where(valid > 0.0, logits, _MASKED_LOGIT)
  cross_entropy = tf.nn.softmax_cross_entropy_with_logits(
      labels=targets.one_hot, logits=logits)
  pixel_is_thing = tf.einsum('bpk,bk->bp', targets.one_hot, targets.is_thing)
  return reduction.nonzero_mean(cross_entropy * pixel_is_thing)


def sample_pixels(targets: gt_lib.MaskTargets, sample_count: int,
                  sample_temperature: float) -> tf.Tensor:
  """[B, A] pixel indices drawn without replacement, A = min(count, h w).

  Gumbel top-k: the A largest of logits + Gumbel noise are a sample without
  replacement from softmax(logits), with logits = log(1 / area of the
  pixel's mask) * sample_temperature, so small masks are not drowned out by
  large ones. Unlabelled pixels get a very low logit; they are drawn only
  once the labelled ones run out (and are then ignored by the loss).
  """
  num_pixels = targets.mask_id.shape[-1]
  pixel_area = tf.einsum('bpk,bk->bp', targets.one_hot, targets.area)
  logits = -tf.math.log(tf.maximum(pixel_area, 1.0)) * sample_temperature
  logits = tf.where(targets.mask_id >= 0, logits, _MASKED_LOGIT)
  uniform = tf.random.uniform(tf.shape(logits), minval=1e-20, maxval=1.0)
  gumbel = -tf.math.log(-tf.math.log(uniform))
  _, indices = tf.math.top_k(logits + gumbel,
                             k=min(sample_count, num_pixels), sorted=False)
  return indices


def pixel_contrastive_loss(pixel_features: tf.Tensor,
                           targets: gt_lib.MaskTargets, temperature: float,
                           sample_count: int,
                           sample_temperature: float) -> tf.Tensor:
  """[B] CMT-DeepLab's pixel-wise instance discrimination (Eq. 14)."""
  features = _flatten_features(pixel_features)
  indices = sample_pixels(targets, sample_count, sample_temperature)
  sampled_masks = tf.gather(targets.one_hot, indices, batch_dims=1)  # [B,A,K]
  sampled_features = tf.gather(features, indices, batch_dims=1)
  sampled_features = tf.math.l2_normalize(sampled_features, axis=-1)
  labelled = tf.reduce_sum(sampled_masks, axis=-1)  # [B, A]
  same_mask = tf.einsum('bak,bck->bac', sampled_masks, sampled_masks)
  # Target: uniform over P(a); for a labelled anchor P(a) contains a.
  target = tf.math.divide_no_nan(
      same_mask, tf.reduce_sum(same_mask, axis=-1, keepdims=True))
  logits = tf.einsum('bad,bcd->bac', sampled_features,
                     sampled_features) / temperature
  logits = tf.where(labelled[:, tf.newaxis, :] > 0.0, logits, _MASKED_LOGIT)
  cross_entropy = tf.nn.softmax_cross_entropy_with_logits(
      labels=target, logits=logits)
  return reduction.nonzero_mean(cross_entropy * labelled)

"""The PQ-style loss of MaX-DeepLab (its Eq. 9-10), split as in DeepLab2.

For slot n matched to ground-truth mask k (class c_k), with the stop-gradient
matched dice d_k and class probability p_k from the matching:

  class term = 1/N' [ sum_matched alpha d_k CE(class logits_n, c_k)
                    + sum_unmatched (1 - alpha) w_n CE(class logits_n, void) ]
  mask term  = alpha/N sum_matched p_k (1 - Dice(m^_n, m_k))

Unmatched predictions are pushed to the void class (index 0) with weight
w_n = 1 (MaX-DeepLab's Eq. 9) or, as DeepLab2 implements it, the share of
the slot's predicted mask on void pixels (`void_ratio`). d_k, p_k and w_n
are floored at 1e-5. The dice loss is computed on labelled pixels with
smoothing 1 (V-Net), on masks softmax_N(mask logits). As in DeepLab2 the
mask term is divided by the number of slots N and the class term by N', the
number of its non-zero terms (N unless a slot's cross-entropy is exactly 0),
so that alpha balances the two under about the same normaliser.
"""

import tensorflow as tf

from cmt.data import dataset_info
from cmt.model.loss import strided_targets as gt_lib
from cmt.model.loss import matcher
from cmt.model.loss import reduction

# Floor of the dynamic weights, so a matched pair always gets some signal.
_MIN_WEIGHT = 1e-5


def class_term(matching: matcher.Matching, targets: gt_lib.MaskTargets,
               class_logits: tf.Tensor, alpha: float,
               void_ratio_weight: bool = False) -> tf.Tensor:
  """[B] class term: matched slots to their mask's class, the rest to void.

  With `void_ratio_weight` an unmatched slot's term is weighted by the
  share of its mask on void pixels, else by 1.
  """
  slot_matched = matching.slot_matched
  slot_class = tf.cast(tf.round(matching.to_slots(targets.mask_class)),
                       tf.int32)
  slot_class = tf.where(slot_matched > 0.5, slot_class, dataset_info.VOID)
  cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=slot_class, logits=tf.cast(class_logits, tf.float32))
  slot_dice = matching.to_slots(tf.maximum(matching.dice, _MIN_WEIGHT))
  unmatched_weight = (tf.maximum(matching.void_ratio, _MIN_WEIGHT)
                      if void_ratio_weight else 1.0)
  weight = slot_matched * alpha * slot_dice + (1.0 - slot_matched) * (
      1.0 - alpha) * unmatched_weight
  return reduction.nonzero_mean(weight * cross_entropy)


def dice_loss(targets: gt_lib.MaskTargets, masks: tf.Tensor) -> tf.Tensor:
  """[B, K] 1 - smoothed dice of predicted masks [B, P, K] on labelled pixels."""
  masks = masks * targets.labelled[..., tf.newaxis]
  intersection = tf.reduce_sum(masks * targets.one_hot, axis=1)
  total = tf.reduce_sum(masks, axis=1) + targets.area
  return 1.0 - (2.0 * intersection + 1.0) / (total + 1.0)


def mask_term(matching: matcher.Matching, targets: gt_lib.MaskTargets,
              mask_logits: tf.Tensor, alpha: float) -> tf.Tensor:
  """[B] mask term: dice loss of matched slots, weighted by class prob."""
  num_slots = mask_logits.shape[-1]
  slot_probs = matcher.mask_probabilities(mask_logits)
  # The predicted mask of the slot matched to each ground-truth mask.
  matched_masks = tf.einsum('bpn,bkn->bpk', slot_probs, matching.assignment)
  weight = matching.matched * tf.maximum(matching.class_prob, _MIN_WEIGHT)
  return (alpha / num_slots) * tf.reduce_sum(
      weight * dice_loss(targets, matched_masks), axis=-1)


def pq_style_loss(matching: matcher.Matching, targets: gt_lib.MaskTargets,
                  mask_logits: tf.Tensor, class_logits: tf.Tensor,
                  alpha: float, void_ratio_weight: bool = False) -> tf.Tensor:
  """[B] PQ-style loss, class term plus mask term."""
  return (class_term(matching, targets, class_logits, alpha,
                     void_ratio_weight)
          + mask_term(matching, targets, mask_logits, alpha))

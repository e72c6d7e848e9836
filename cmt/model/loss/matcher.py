"""Bipartite matching of ground-truth masks to cluster centers (MaX-DeepLab).

Each valid ground-truth mask k is matched to a distinct prediction n by
the Hungarian algorithm on the PQ-style similarity

    cost_kn = -(dice(m_k, m^_n) * p^_n(c_k)),

with dice on the predicted mask probabilities softmax_N(mask logits)
restricted to labelled pixels, and p^_n(c_k) the predicted probability of
the mask's class. Padded or vanished masks get a constant cost row, so
they take whatever columns remain without changing the valid matches. The
matching and the matched dice and class probability carry no gradient; they
weight the PQ-style loss terms and are reused by every auxiliary output.
"""

import dataclasses
from typing import Optional

import tensorflow as tf

from cmt.model.loss import strided_targets as gt_lib
from cmt.model.loss import hungarian

# Keeps the dice of an empty prediction against an empty mask finite.
_DICE_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class Matching:
  """The matching of K ground-truth masks to N predictions.

  assignment: [B, K, N] float32, 1 where valid mask k is matched to slot n
    (rows of invalid masks are all zero).
  matched: [B, K] float32, the valid masks (all of them are matched).
  dice: [B, K] float32 dice similarity of each matched pair (no gradient).
  class_prob: [B, K] float32 predicted probability of the mask's class for
    its matched slot (no gradient).
  void_ratio: [B, N] float32 share of each slot's predicted mask on
    unlabelled pixels (no gradient).
  """
  assignment: tf.Tensor
  matched: tf.Tensor
  dice: tf.Tensor
  class_prob: tf.Tensor
  void_ratio: tf.Tensor

  @property
  def slot_matched(self) -> tf.Tensor:
    """[B, N] float32, 1 for slots matched to a ground-truth mask."""
    return tf.reduce_sum(self.assignment, axis=1)

  def to_slots(self, per_mask: tf.Tensor) -> tf.Tensor:
    """[B, K] values of the masks -> [B, N] values of their matched slots."""
    return tf.einsum('bk,bkn->bn', tf.cast(per_mask, tf.float32),
                     self.assignment)

  def slot_targets(self, targets: gt_lib.MaskTargets) -> tf.Tensor:
    """[B, P, N] one-hot of the slot matched to each pixel's mask."""
    return tf.einsum('bpk,bkn->bpn', targets.one_hot, self.assignment)


def mask_probabilities(mask_logits: tf.Tensor) -> tf.Tensor:
  """[B, h, w, N] logits -> [B, h w, N] softmax over the N slots (Eq. 4)."""
  _, height, width, num_slots = mask_logits.shape
  return tf.reshape(tf.nn.softmax(tf.cast(mask_logits, tf.float32), axis=-1),
                    [-1, height * width, num_slots])


def dice_similarity(targets: gt_lib.MaskTargets,
                    slot_probs: tf.Tensor) -> tf.Tensor:
  """[B, K, N] dice between every mask and every slot, on labelled pixels."""
  slot_probs = slot_probs * targets.labelled[..., tf.newaxis]
  intersection = tf.einsum('bpk,bpn->bkn', targets.one_hot, slot_probs)
  half_sizes = (targets.area[..., tf.newaxis]
                + tf.reduce_sum(slot_probs, axis=1)[:, tf.newaxis, :]) / 2.0
  return intersection / (half_sizes + _DICE_EPSILON)


def class_similarity(targets: gt_lib.MaskTargets,
                     class_logits: tf.Tensor) -> tf.Tensor:
  """[B, K, N] probability that slot n predicts the class of mask k."""
  class_probs = tf.nn.softmax(tf.cast(class_logits, tf.float32), axis=-1)
  # [B, N, C + 1] -> [B, K, N] by gathering each mask's class column.
  return tf.gather(tf.transpose(class_probs, [0, 2, 1]), targets.mask_class,
                   batch_dims=1)


def match(targets: gt_lib.MaskTargets, mask_logits: tf.Tensor,
          class_logits: tf.Tensor,
          assignment: Optional[tf.Tensor] = None) -> Matching:
  """Hungarian matching on -(dice x class probability).

  Args:
    targets: ground truth at the resolution of `mask_logits`.
    mask_logits: [B, h, w, N].
    class_logits: [B, N, C + 1], index 0 = void.
    assignment: optional [B, K, N] 0/1 matching to use instead of the
      Hungarian one (e.g. a reference implementation's, to compare losses);
      each valid mask's row must hold exactly one 1, in distinct columns.
      Rows of invalid masks are ignored.

  Raises:
    ValueError: if there are more padded masks K than predictions N.
  """
  num_masks = targets.mask_class.shape[-1]
  num_slots = mask_logits.shape[-1]
  if num_masks > num_slots:
    raise ValueError(
        f'matching needs at most as many padded ground-truth masks as cluster '
        f'centers: K={num_masks} (dataset max_num_masks) > N={num_slots} '
        '(transformer num_cluster_centers)')
  slot_probs = tf.stop_gradient(mask_probabilities(mask_logits))
  dice = dice_similarity(targets, slot_probs)
  class_prob = class_similarity(targets, tf.stop_gradient(class_logits))
  valid = targets.valid[..., tf.newaxis]
  if assignment is None:
    cost = -dice * class_prob * valid  # Invalid rows: constant 0.
    assignment = hungarian.hungarian_match(cost)
  elif assignment.shape[1:] != dice.shape[1:]:
    raise ValueError(f'imposed assignment: expected [B, K, N] = [B, '
                     f'{num_masks}, {num_slots}], got {assignment.shape}')
  assignment = tf.cast(assignment, tf.float32) * valid
  unlabelled = (1.0 - targets.labelled)[..., tf.newaxis]
  void_ratio = tf.reduce_sum(slot_probs * unlabelled, axis=1) / (
      tf.reduce_sum(slot_probs, axis=1) + _DICE_EPSILON)
  return Matching(
      assignment=assignment,
      matched=targets.valid,
      dice=tf.reduce_sum(dice * assignment, axis=-1),
      class_prob=tf.reduce_sum(class_prob * assignment, axis=-1),
      void_ratio=void_ratio)

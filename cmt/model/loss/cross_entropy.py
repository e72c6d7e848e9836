"""Per-pixel cross-entropies: mask-ID (MaX-DeepLab) and semantic.

Both are averaged per image over the pixels they supervise, counting only
non-zero terms as DeepLab2 does (`reduction.nonzero_mean`; an image with
none gives 0).
"""

import tensorflow as tf

from cmt.data import dataset_info
from cmt.model.loss import strided_targets as gt_lib
from cmt.model.loss import matcher
from cmt.model.loss import reduction


def mask_id_cross_entropy(matching: matcher.Matching,
                          targets: gt_lib.MaskTargets,
                          mask_logits: tf.Tensor) -> tf.Tensor:
  """[B] mask-ID cross-entropy: each labelled pixel to its mask's slot.

  The classifier is softmax over the N slots of the mask logits [B, h, w, N];
  the target of a pixel is the slot matched to its ground-truth mask.
  Void, crowd and padding pixels are not supervised.
  """
  _, height, width, num_slots = mask_logits.shape
  logits = tf.reshape(tf.cast(mask_logits, tf.float32),
                      [-1, height * width, num_slots])
  slot_one_hot = matching.slot_targets(targets)  # [B, P, N]
  supervised = tf.reduce_sum(slot_one_hot, axis=-1)  # Labelled and matched.
  cross_entropy = tf.nn.softmax_cross_entropy_with_logits(
      labels=slot_one_hot, logits=logits)
  return reduction.nonzero_mean(cross_entropy * supervised)


def semantic_cross_entropy(gt_semantic: tf.Tensor,
                           semantic_logits: tf.Tensor) -> tf.Tensor:
  """[B] cross-entropy of the auxiliary semantic head, void ignored.

  Args:
    gt_semantic: [B, H, W] int contiguous classes at crop resolution, void
      (0) on crowd pixels too (`cmt.data.crop_targets`), as DeepLab2 trains.
    semantic_logits: [B, h, w, C + 1] on a strided grid of the crop.
  """
  _, height, width, num_classes = semantic_logits.shape
  labels = gt_lib.strided_downsample(tf.cast(gt_semantic, tf.int32), height,
                                     width, 'gt_semantic')
  labels = tf.reshape(labels, [-1, height * width])
  logits = tf.reshape(tf.cast(semantic_logits, tf.float32),
                      [-1, height * width, num_classes])
  cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=logits)
  return reduction.nonzero_mean(
      cross_entropy * tf.cast(labels != dataset_info.VOID, tf.float32))

"""The training targets of one crop (MaX-DeepLab / CMT-DeepLab), from its
panoptic label.

Given one cropped label map `semantic * divisor + instance` (encoding in
`cmt.data.panoptic_label`), computes in TensorFlow:

* GT_SEMANTIC: `label // divisor`, the contiguous class, with 0 (void) on
  void, padding and crowd pixels: the auxiliary semantic loss ignores crowd
  as DeepLab2 trains on COCO (its converter's default
  `treat_crowd_as_ignore` writes crowd as void). Evaluation reads crowd
  from the stored label instead (`cmt.data.eval_inputs`), as panopticapi.
* GT_PANOPTIC: the label itself (crowd = thing class with instance 0).
* GT_CROWD: 1 where the class is a thing and the instance is 0.
* The K = `max_num_masks` ground-truth masks of the bipartite matching
  (MaX-DeepLab Sec. 3; CMT-DeepLab's losses and Eq. 13): one per distinct
  non-void, non-crowd label value, things and stuff alike, sorted by area
  (largest first, ties by first occurrence in raster order). If an image has
  more than K segments only the K largest are kept; the pixels of the
  dropped ones get mask id -1 and weight 0, i.e. are treated like void.
  - GT_MASK_ID [H, W]: index k of the pixel's mask, -1 on void, crowd,
    padding and dropped segments. The binary masks are `GT_MASK_ID == k`.
  - GT_MASK_CLASS [K]: class of mask k (0 for padding slots).
  - GT_MASK_VALID [K]: 1 for the real masks, 0 for padding slots.
  - GT_MASK_IS_THING [K]: 1 for thing masks.
* GT_PIXEL_WEIGHT [H, W]: 1 where GT_MASK_ID >= 0, else 0.

Shapes are static once the label's are. GT_PANOPTIC, GT_CROWD and
GT_PIXEL_WEIGHT describe the crop for the host (tests, inspection); the
train step reads none of them, so the trainer does not send them to the
device (`cmt.trainer.trainer.numeric_features`).
"""

import tensorflow as tf

from cmt import common
from cmt.data import dataset_info as dataset_info_lib


def compute_targets(label: tf.Tensor, info: dataset_info_lib.DatasetInfo,
                    max_num_masks: int) -> dict[str, tf.Tensor]:
  """Targets of one [H, W] int32 label (module docstring), keyed by common."""
  label = tf.convert_to_tensor(label, tf.int32)
  divisor = info.label_divisor
  semantic = label // divisor
  instance = label % divisor
  thing_table = tf.constant(info.thing_mask, tf.bool)
  is_thing_pixel = tf.gather(thing_table, semantic)
  crowd = tf.logical_and(is_thing_pixel, tf.equal(instance, 0))
  has_mask = tf.logical_and(tf.not_equal(semantic, dataset_info_lib.VOID),
                            tf.logical_not(crowd))

  # Distinct segments with their areas; -1 collects void/crowd/padding.
  flat = tf.reshape(tf.where(has_mask, label, -1), [-1])
  segment_values, segment_of_pixel = tf.unique(flat)
  areas = tf.math.unsorted_segment_sum(
      tf.ones_like(flat), segment_of_pixel, tf.size(segment_values))
  areas = tf.where(segment_values < 0, -1, areas)
  # Largest first; the stable sort keeps raster order among equal areas.
  order = tf.argsort(areas, direction='DESCENDING', stable=True)
  num_segments = tf.reduce_sum(tf.cast(segment_values >= 0, tf.int32))
  num_kept = tf.minimum(num_segments, max_num_masks)
  rank = tf.math.invert_permutation(order)
  mask_of_segment = tf.where(rank < num_kept, rank, -1)
  mask_id = tf.reshape(tf.gather(mask_of_segment, segment_of_pixel),
                       tf.shape(label))

  kept_values = tf.gather(segment_values, order[:num_kept])
  padding = [[0, max_num_masks - num_kept]]
  mask_class = tf.pad(kept_values // divisor, padding)
  mask_class.set_shape([max_num_masks])
  valid = tf.pad(tf.ones([num_kept], tf.float32), padding)
  valid.set_shape([max_num_masks])
  is_thing = tf.cast(tf.gather(thing_table, mask_class), tf.float32) * valid

  return {
      common.GT_SEMANTIC: tf.where(crowd, dataset_info_lib.VOID, semantic),
      common.GT_PANOPTIC: label,
      common.GT_CROWD: tf.cast(crowd, tf.float32),
      common.GT_MASK_ID: mask_id,
      common.GT_MASK_CLASS: mask_class,
      common.GT_MASK_VALID: valid,
      common.GT_MASK_IS_THING: is_thing,
      common.GT_PIXEL_WEIGHT: tf.cast(mask_id >= 0, tf.float32),
  }

"""Mask approximation loss of CMT-DeepLab (Eq. 13).

The M reference points r_n [M, 2] of each cluster center (Eq. 10; (h, w) in
[0, 1]) should spread like the pixels y of the ground-truth mask matched to
that center. Per matched mask i, with extreme points taken by min / max and
the centre by the mean (the paper's "exp" in L_cen is this mean):

  L_ext = 1/(4K) sum_i |min r^h - min y^h| + |max r^h - max y^h|
                     + |min r^w - min y^w| + |max r^w - max y^w|
  L_cen = 1/(2K) sum_i |mean r^h - mean y^h| + |mean r^w - mean y^w|
  L_loc = L_ext + L_cen,

K being the number of matched masks of the image. Pixel (y, x) of an h x w
grid sits at (y / (h - 1), x / (w - 1)), the align-corners convention under
which a stride-4 grid of a 4k + 1 crop covers [0, 1] exactly.
"""

import dataclasses

import tensorflow as tf

from cmt.model.loss import strided_targets as gt_lib
from cmt.model.loss import matcher


@dataclasses.dataclass(frozen=True)
class MaskGeometry:
  """Extremes and centre of each ground-truth mask, normalised to [0, 1].

  minimum, maximum, mean: [B, K, 2] in (h, w) order; 0 for empty masks.
  """
  minimum: tf.Tensor
  maximum: tf.Tensor
  mean: tf.Tensor


def _normalised_grid(size: int) -> tf.Tensor:
  if size == 1:
    return tf.zeros([1], tf.float32)
  return tf.range(size, dtype=tf.float32) / float(size - 1)


def _extent(presence: tf.Tensor, grid: tf.Tensor):
  """presence [B, L, K] along one axis -> (min, max) [B, K] of grid there."""
  present = presence > 0.0
  coords = grid[tf.newaxis, :, tf.newaxis]
  large = tf.constant(2.0)
  minimum = tf.reduce_min(tf.where(present, coords, large), axis=1)
  maximum = tf.reduce_max(tf.where(present, coords, -large), axis=1)
  any_pixel = tf.reduce_any(present, axis=1)
  return (tf.where(any_pixel, minimum, 0.0), tf.where(any_pixel, maximum, 0.0))


def mask_geometry(targets: gt_lib.MaskTargets) -> MaskGeometry:
  """Normalised extremes and centres of the ground-truth masks."""
  height, width = targets.height, targets.width
  num_masks = targets.mask_class.shape[-1]
  masks = tf.reshape(targets.one_hot, [-1, height, width, num_masks])
  grid_h, grid_w = _normalised_grid(height), _normalised_grid(width)
  min_h, max_h = _extent(tf.reduce_max(masks, axis=2), grid_h)
  min_w, max_w = _extent(tf.reduce_max(masks, axis=1), grid_w)
  area = tf.maximum(targets.area, 1.0)
  mean_h = tf.einsum('bhwk,h->bk', masks, grid_h) / area
  mean_w = tf.einsum('bhwk,w->bk', masks, grid_w) / area
  return MaskGeometry(minimum=tf.stack([min_h, min_w], axis=-1),
                      maximum=tf.stack([max_h, max_w], axis=-1),
                      mean=tf.stack([mean_h, mean_w], axis=-1))


def mask_approximation_loss(matching: matcher.Matching,
                            geometry: MaskGeometry,
                            reference_points: tf.Tensor) -> tf.Tensor:
  """[B] L_loc of Eq. 13.

  Args:
    matching: which cluster center each ground-truth mask is matched to.
    geometry: the ground-truth masks' extremes and centres.
    reference_points: [B, N, M, 2] predicted points (h, w) in [0, 1].
  """
  points = tf.einsum('bnmc,bkn->bkmc', tf.cast(reference_points, tf.float32),
                     matching.assignment)  # The matched center's points.
  extreme = (tf.abs(tf.reduce_min(points, axis=2) - geometry.minimum)
             + tf.abs(tf.reduce_max(points, axis=2) - geometry.maximum))
  centre = tf.abs(tf.reduce_mean(points, axis=2) - geometry.mean)
  per_mask = (tf.reduce_sum(extreme, axis=-1) / 4.0
              + tf.reduce_sum(centre, axis=-1) / 2.0)
  return tf.math.divide_no_nan(
      tf.reduce_sum(per_mask * matching.matched, axis=-1),
      tf.reduce_sum(matching.matched, axis=-1))

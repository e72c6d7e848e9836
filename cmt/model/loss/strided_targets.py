"""The targets of a batch (`cmt.data.crop_targets`, padded) sampled onto a
prediction's strided grid.

The data pipeline gives labels at crop resolution [B, H, W] (crops 4k + 1);
predictions live on a strided grid h = (H - 1) / s + 1. As in DeepLab2 the
labels are brought there by strided sampling `labels[:, ::s, ::s]`, so a
prediction pixel (y, x) reads the label of crop pixel (s y, s x) and, with
align-corners coordinates, both sit at (y / (h - 1), x / (w - 1)).
"""

import dataclasses

import tensorflow as tf

from cmt import common


def label_stride(crop_size: int, output_size: int, what: str) -> int:
  """The stride s with (crop_size - 1) = s (output_size - 1)."""
  if output_size == crop_size:
    return 1
  if output_size == 1:
    return crop_size  # Only pixel 0 is sampled.
  stride, remainder = divmod(crop_size - 1, output_size - 1)
  if remainder or stride < 1:
    raise ValueError(
        f'{what}: output size {output_size} is not on a strided grid of the '
        f'crop size {crop_size}; expected (crop - 1) / stride + 1 (crops are '
        '4k + 1, see cmt.common)')
  return stride


def strided_downsample(labels: tf.Tensor, height: int, width: int,
                       what: str = 'labels') -> tf.Tensor:
  """[B, H, W, ...] -> [B, height, width, ...] by taking every s-th pixel."""
  crop_height, crop_width = labels.shape[1], labels.shape[2]
  if crop_height is None or crop_width is None:
    raise ValueError(f'{what}: the crop size must be static, got shape '
                     f'{labels.shape}')
  stride_h = label_stride(crop_height, height, what)
  stride_w = label_stride(crop_width, width, what)
  return labels[:, ::stride_h, ::stride_w][:, :height, :width]


# The ground-truth features `mask_targets` reads.
MASK_TARGET_KEYS = (common.GT_MASK_ID, common.GT_MASK_CLASS,
                    common.GT_MASK_VALID, common.GT_MASK_IS_THING)


@dataclasses.dataclass(frozen=True)
class MaskTargets:
  """The K padded ground-truth masks on an h x w grid, pixels flattened.

  mask_id: [B, P] int32, P = h w; the mask of each pixel, -1 on void, crowd
    and padding.
  one_hot: [B, P, K] float32, pixel p belongs to mask k.
  area: [B, K] float32, pixels of each mask on this grid.
  valid: [B, K] float32, a real mask (GT_MASK_VALID) with pixels on this
    grid; only these are matched and supervised.
  mask_class: [B, K] int32 contiguous class (0 for padding).
  is_thing: [B, K] float32.
  """
  mask_id: tf.Tensor
  one_hot: tf.Tensor
  area: tf.Tensor
  valid: tf.Tensor
  mask_class: tf.Tensor
  is_thing: tf.Tensor
  height: int
  width: int

  @property
  def labelled(self) -> tf.Tensor:
    """[B, P] float32, 1 on pixels that belong to a mask."""
    return tf.cast(self.mask_id >= 0, tf.float32)


def mask_targets(ground_truth: dict, height: int, width: int) -> MaskTargets:
  """Builds the targets of an h x w prediction from the padded ground truth."""
  mask_class = tf.cast(ground_truth[common.GT_MASK_CLASS], tf.int32)
  num_masks = mask_class.shape[-1]
  if num_masks is None:
    raise ValueError(f'{common.GT_MASK_CLASS}: the number of padded masks K '
                     f'must be static, got shape {mask_class.shape}')
  mask_id = strided_downsample(
      tf.cast(ground_truth[common.GT_MASK_ID], tf.int32), height, width,
      common.GT_MASK_ID)
  mask_id = tf.reshape(mask_id, [-1, height * width])
  one_hot = tf.one_hot(mask_id, num_masks, dtype=tf.float32)  # -1 -> zeros.
  area = tf.reduce_sum(one_hot, axis=1)
  valid = tf.cast(ground_truth[common.GT_MASK_VALID], tf.float32) * tf.cast(
      area > 0.0, tf.float32)
  return MaskTargets(
      mask_id=mask_id, one_hot=one_hot, area=area, valid=valid,
      mask_class=mask_class,
      is_thing=tf.cast(ground_truth[common.GT_MASK_IS_THING], tf.float32),
      height=height, width=width)

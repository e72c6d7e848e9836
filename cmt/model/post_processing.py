"""Post-processing: mask and class logits -> panoptic, semantic, instance maps.

Two procedures, chosen by `EvaluatorOptions.post_processing`:

PER_PIXEL (MaX-DeepLab, Wang et al. 2021, Sec. 3): a center n is kept when
its class confidence max_{c != void} p_n(c) >= thing_class_threshold. Each
pixel goes to argmax_n of the mask logits over the kept centers; it is void
unless its softmax probability over the kept centers exceeds
pixel_confidence_threshold and its argmax over ALL centers is a kept one.

MASK_WISE (MaskFormer-style merging, the paper's inference, Table 2d):
each center gives a binary mask m_n = [softmax_N(mask logits)_n >
pixel_confidence_threshold] and a mask score s_n = mean of its probability
over m_n. Centers are ranked by class_conf_n^a * s_n^b (a, b =
class_score_power, mask_score_power) and pasted high to low: a center is
dropped unless its class confidence reaches the thing / stuff class
threshold of its predicted class and more than overlap_threshold of its
mask is still free; it then takes its free pixels.

Both then drop thing segments (per center) smaller than thing_area_limit and
stuff regions (per class; centers of one stuff class merge into a single
segment) smaller than stuff_area_limit, and label pixels
`semantic * label_divisor + instance`: things are numbered per class from 1
in ranking order (PER_PIXEL ranks by class_conf x mean pixel confidence),
stuff has instance 0, void is 0.

Mask logits come at stride 4 or 8 ([B, h, w, N],
`decoder.high_resolution_output_stride`); they are upsampled bilinearly with
aligned corners to the crop size ((h - 1) * stride + 1 per side).
Everything is pure TensorFlow with static shapes and compiles with XLA.

Besides the three maps, the output has a static-shape segment list, one
entry per center: PRED_SEGMENT_LABELS [B, N] int32, the panoptic label of
the segment the center produced (0 if none; centers merged into one stuff
segment share its label), and PRED_SEGMENT_SCORES [B, N] float32, its
ranking score (0 if none). `cmt.evaluation.evaluator.segment_scores_of`
turns one image's entries into detection scores for COCO mask AP.
"""

from typing import Mapping, Optional, Sequence

import tensorflow as tf

from cmt import common
from cmt import config_checks
from cmt.data import dataset_info as dataset_info_lib
from cmt.model.layers import norm_act
from cmt.protos import evaluator_pb2

# The stride of the mask logits when the caller gives no crop size.
DEFAULT_MASK_STRIDE = 4
# Logit given to centers that are not kept (softmax weight ~ 0).
_DROPPED_LOGIT = -1e9

_Options = evaluator_pb2.EvaluatorOptions


def check_options(options: _Options):
  """Raises ValueError naming the evaluator_options field that is invalid
  (the checks of `cmt.config_checks`)."""
  problems = config_checks.evaluator_problems(options)
  if problems:
    raise ValueError('; '.join(problems))


def upsample_mask_logits(mask_logits: tf.Tensor,
                         crop_size: Optional[Sequence[int]] = None
                         ) -> tf.Tensor:
  """[B, h, w, N] -> [B, H, W, N] at the crop, bilinear, aligned corners;
  without `crop_size`, H = (h - 1) * 4 + 1 (logits at stride 4)."""
  _, height, width, _ = mask_logits.shape
  if crop_size is None:
    crop_size = ((height - 1) * DEFAULT_MASK_STRIDE + 1,
                 (width - 1) * DEFAULT_MASK_STRIDE + 1)
  return norm_act.resize_align_corners(mask_logits, tuple(crop_size))


def class_predictions(class_logits: tf.Tensor):
  """Per center: (class_conf [B, N], class_pred [B, N] int32 in 1..C).

  class_conf = max_{c >= 1} softmax(class_logits)_c; void (index 0) takes
  part in the softmax but is never predicted.
  """
  probs = tf.nn.softmax(tf.cast(class_logits, tf.float32), axis=-1)
  class_conf = tf.reduce_max(probs[..., 1:], axis=-1)
  class_pred = tf.argmax(probs[..., 1:], axis=-1, output_type=tf.int32) + 1
  return class_conf, class_pred


def per_pixel_assignment(mask_logits, class_conf, options: _Options):
  """PER_PIXEL: center index per pixel ([B, H, W], -1 = void), and scores.

  The score of a center is class_conf x the mean confidence of its pixels.
  """
  kept = class_conf >= options.thing_class_threshold               # [B, N]
  kept_logits = tf.where(kept[:, None, None, :], mask_logits, _DROPPED_LOGIT)
  probs = tf.nn.softmax(kept_logits, axis=-1)
  center = tf.argmax(kept_logits, axis=-1, output_type=tf.int32)
  confidence = tf.reduce_max(probs, axis=-1)
  argmax_is_kept = (tf.reduce_max(mask_logits, axis=-1) <=
                    tf.reduce_max(kept_logits, axis=-1))
  confident = ((confidence > options.pixel_confidence_threshold) &
               argmax_is_kept & tf.reduce_any(kept, axis=-1)[:, None, None])
  assignment = tf.where(confident, center, -1)
  num_centers = mask_logits.shape[-1]
  one_hot = tf.one_hot(assignment, num_centers, dtype=tf.float32)  # -1 -> 0
  pixel_sum = tf.reduce_sum(one_hot * confidence[..., None], axis=[1, 2])
  pixel_count = tf.reduce_sum(one_hot, axis=[1, 2])
  mask_score = tf.math.divide_no_nan(pixel_sum, pixel_count)
  return assignment, class_conf * mask_score


def mask_wise_assignment(mask_logits, class_conf, class_is_thing,
                         options: _Options):
  """MASK_WISE: center index per pixel ([B, H, W], -1 = void), and scores."""
  probs = tf.nn.softmax(mask_logits, axis=-1)                   # [B,H,W,N]
  binary = probs > options.pixel_confidence_threshold
  binary_float = tf.cast(binary, tf.float32)
  mask_score = tf.math.divide_no_nan(
      tf.reduce_sum(probs * binary_float, axis=[1, 2]),
      tf.reduce_sum(binary_float, axis=[1, 2]))                    # [B, N]
  score = (tf.pow(class_conf, options.class_score_power) *
           tf.pow(mask_score, options.mask_score_power))
  order = tf.argsort(score, axis=-1, direction='DESCENDING', stable=True)
  class_ok = tf.where(class_is_thing,
                      class_conf >= options.thing_class_threshold,
                      class_conf >= options.stuff_class_threshold)
  masks = tf.transpose(binary, [0, 3, 1, 2])                    # [B,N,H,W]
  num_centers = mask_logits.shape[-1]

  def paste(rank, canvas):
    center = order[:, rank]                                            # [B]
    mask = tf.gather(masks, center[:, None], batch_dims=1)[:, 0]   # [B,H,W]
    free = mask & (canvas < 0)
    area = tf.reduce_sum(tf.cast(mask, tf.float32), axis=[1, 2])
    free_area = tf.reduce_sum(tf.cast(free, tf.float32), axis=[1, 2])
    keep = (tf.gather(class_ok, center, batch_dims=1) &
            (free_area > options.overlap_threshold * area))
    return rank + 1, tf.where(free & keep[:, None, None],
                              center[:, None, None], canvas)

  canvas = tf.fill(tf.shape(mask_logits)[:3], -1)
  _, canvas = tf.while_loop(lambda rank, _: rank < num_centers, paste,
                            (tf.constant(0), canvas),
                            maximum_iterations=num_centers)
  return canvas, score


def _count_per_segment(segment, valid, num_segments):
  """Pixels per segment id; `segment` [B, H, W] in [0, num_segments)."""
  batch = segment.shape[0] or tf.shape(segment)[0]
  offsets = tf.range(batch, dtype=tf.int32)[:, None, None] * num_segments
  ids = tf.where(valid, segment + offsets, batch * num_segments)
  counts = tf.math.unsorted_segment_sum(
      tf.ones_like(ids, tf.int32), ids, batch * num_segments + 1)
  return tf.reshape(counts[:-1], [batch, num_segments])


def panoptic_labels(assignment, class_pred, class_is_thing, score,
                    dataset_info: dataset_info_lib.DatasetInfo,
                    options: _Options) -> Mapping[str, tf.Tensor]:
  """Area limits and labels from a center-per-pixel map (module docstring)."""
  num_centers = class_pred.shape[-1]
  divisor = dataset_info.label_divisor
  valid = assignment >= 0
  center = tf.maximum(assignment, 0)
  pixel_class = tf.gather(class_pred, center, batch_dims=1)
  pixel_is_thing = tf.gather(class_is_thing, center, batch_dims=1)
  center_area = _count_per_segment(center, valid, num_centers)        # [B,N]
  class_area = _count_per_segment(pixel_class, valid & ~pixel_is_thing,
                                  dataset_info.num_classes + 1)     # [B,C+1]
  thing_kept = (class_is_thing & (center_area > 0) &
                (center_area >= options.thing_area_limit))
  stuff_region_kept = ((class_area > 0) &
                       (class_area >= options.stuff_area_limit))
  stuff_kept = (~class_is_thing & (center_area > 0) &
                tf.gather(stuff_region_kept, class_pred, batch_dims=1))
  center_kept = thing_kept | stuff_kept
  # Things numbered per class from 1 in ranking order: 1 + the number of
  # kept centers of the same class ranked higher.
  rank = tf.argsort(tf.argsort(score, axis=-1, direction='DESCENDING',
                               stable=True), axis=-1, stable=True)
  ranked_before = rank[:, None, :] < rank[:, :, None]          # [B, i, j]
  same_class = class_pred[:, None, :] == class_pred[:, :, None]
  earlier = same_class & ranked_before & thing_kept[:, None, :]
  instance = tf.where(thing_kept,
                      1 + tf.reduce_sum(tf.cast(earlier, tf.int32), -1), 0)
  segment_label = tf.where(center_kept, class_pred * divisor + instance, 0)
  pixel_kept = valid & tf.gather(center_kept, center, batch_dims=1)
  panoptic = tf.where(pixel_kept,
                      tf.gather(segment_label, center, batch_dims=1), 0)
  return {
      common.PRED_PANOPTIC: panoptic,
      common.PRED_SEMANTIC: panoptic // divisor,
      common.PRED_INSTANCE: panoptic % divisor,
      common.PRED_SEGMENT_LABELS: segment_label,
      common.PRED_SEGMENT_SCORES: tf.where(center_kept, score, 0.0),
  }


def post_process(outputs: Mapping[str, tf.Tensor],
                 evaluator_options: _Options,
                 dataset_info: dataset_info_lib.DatasetInfo,
                 crop_size: Optional[Sequence[int]] = None) -> dict:
  """Model outputs -> PRED_PANOPTIC / PRED_SEMANTIC / PRED_INSTANCE [B, H, W]
  int32 at crop resolution, plus PRED_SEGMENT_LABELS / PRED_SEGMENT_SCORES
  [B, N] (module docstring).

  Args:
    outputs: holds MASK_LOGITS [B, h, w, N] and CLASS_LOGITS [B, N, C + 1]
      (static shapes; any float dtype, computed in float32).
    evaluator_options: `EvaluatorOptions`; its post-processing fields.
    dataset_info: classes (things / stuff) and the label divisor.
    crop_size: [H, W] of the images the model ran on; needed unless the
      logits are at stride 4.
  """
  check_options(evaluator_options)
  mask_logits = tf.cast(outputs[common.MASK_LOGITS], tf.float32)
  class_logits = outputs[common.CLASS_LOGITS]
  num_centers = mask_logits.shape[-1]
  if class_logits.shape[-1] != dataset_info.num_classes + 1:
    raise ValueError(f'{common.CLASS_LOGITS} has {class_logits.shape[-1]} '
                     f'classes; {dataset_info.name} needs '
                     f'{dataset_info.num_classes} + 1 (void)')
  if num_centers >= dataset_info.label_divisor:
    raise ValueError(f'{num_centers} centers could number more instances of '
                     f'one class than label_divisor '
                     f'{dataset_info.label_divisor} allows')
  class_conf, class_pred = class_predictions(class_logits)
  thing_table = tf.constant(dataset_info.thing_mask, tf.bool)
  class_is_thing = tf.gather(thing_table, class_pred)
  mask_logits = upsample_mask_logits(mask_logits, crop_size)
  if evaluator_options.post_processing == _Options.PER_PIXEL:
    assignment, score = per_pixel_assignment(mask_logits, class_conf,
                                             evaluator_options)
  else:
    assignment, score = mask_wise_assignment(mask_logits, class_conf,
                                             class_is_thing, evaluator_options)
  return panoptic_labels(assignment, class_pred, class_is_thing, score,
                         dataset_info, evaluator_options)

"""Post-processing on constructed logits with known answers (both modes).

Mask logits are affine in the stride-4 column index c, so bilinear
upsampling with aligned corners reproduces them exactly at crop column x as
f(x / 4): the region each center wins is known to the pixel.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt.data import dataset_info as dataset_info_lib
from cmt.model import post_processing
from cmt.protos import evaluator_pb2

Options = evaluator_pb2.EvaluatorOptions
# Classes: 1 'a' thing, 2 'b' thing, 3 's' stuff; void 0.
INFO = dataset_info_lib.from_categories('toy', [
    {'id': 1, 'name': 'a', 'isthing': 1},
    {'id': 2, 'name': 'b', 'isthing': 1},
    {'id': 10, 'name': 's', 'isthing': 0}])
A, B, S = 1, 2, 3
LOW = 5          # stride-4 size; the crop is 17 x 17
CROP = 17
VOID_CENTER = (0, 10.0)  # class-logit recipe of a center predicting void


def column_logits(*functions):
  """[1, 5, 5, N]: center n's logit at stride-4 column c is functions[n](c)."""
  c = np.arange(LOW, dtype=np.float64)
  columns = np.stack([f(c) for f in functions], axis=-1)       # [5, N]
  return np.broadcast_to(columns[None, None], (1, LOW, LOW, len(functions)))


def class_logits(*recipes):
  """[1, N, 4]: each recipe (class, logit) puts `logit` on `class`, 0 else."""
  logits = np.zeros((1, len(recipes), INFO.num_classes + 1))
  for n, (class_id, value) in enumerate(recipes):
    logits[0, n, class_id] = value
  return logits


def confidence_logit(probability):
  """The class logit giving `probability` against three zero logits."""
  return math.log(3 * probability / (1 - probability))


def run(mask, classes, jit=False, **options):
  options.setdefault('thing_area_limit', 0)
  options.setdefault('stuff_area_limit', 0)
  evaluator_options = Options(**options)
  outputs = {common.MASK_LOGITS: tf.constant(mask, tf.float32),
             common.CLASS_LOGITS: tf.constant(classes, tf.float32)}
  function = lambda o: post_processing.post_process(o, evaluator_options,
                                                     INFO)
  if jit:
    function = tf.function(function, jit_compile=True)
  return {k: v.numpy() for k, v in function(outputs).items()}


def expected_map(*column_ranges):
  """[17, 17] with label value on the given crop columns [start, stop)."""
  result = np.zeros((CROP, CROP), np.int32)
  for start, stop, value in column_ranges:
    result[:, start:stop] = value
  return result


# Left / right split at crop column 6.4: columns 0-6 and 7-16.
def left(c):
  return 10 * (1.6 - c)


def right(c):
  return 10 * (c - 1.6)


def far(c):
  return np.full_like(c, -20.0)


# Four stripes (columns 0-3, 4-7, 8-11, 12-16) from the upper envelope of
# lines of slope 0..3 with breakpoints c = 0.9, 1.9, 2.9.
def stripe(index):
  breaks = (0.9, 1.9, 2.9)
  return lambda c: 10 * (index * c - sum(breaks[:index]))


STRIPES = ((0, 4), (4, 8), (8, 12), (12, 17))


@pytest.mark.parametrize('mode', [Options.PER_PIXEL, Options.MASK_WISE])
def test_thing_and_stuff_halves(mode):
  out = run(column_logits(left, right, far),
            class_logits((A, 10.0), (S, 10.0), VOID_CENTER),
            post_processing=mode)
  panoptic = expected_map((0, 7, A * 256 + 1), (7, 17, S * 256))
  np.testing.assert_array_equal(out[common.PRED_PANOPTIC][0], panoptic)
  np.testing.assert_array_equal(out[common.PRED_SEMANTIC][0], panoptic // 256)
  np.testing.assert_array_equal(out[common.PRED_INSTANCE][0], panoptic % 256)
  np.testing.assert_array_equal(out[common.PRED_SEGMENT_LABELS][0],
                                [A * 256 + 1, S * 256, 0])
  scores = out[common.PRED_SEGMENT_SCORES][0]
  assert scores[0] > 0.5 and scores[1] > 0.5 and scores[2] == 0
  for key in (common.PRED_PANOPTIC, common.PRED_SEMANTIC,
              common.PRED_INSTANCE):
    assert out[key].dtype == np.int32 and out[key].shape == (1, CROP, CROP)


@pytest.mark.parametrize('mode', [Options.PER_PIXEL, Options.MASK_WISE])
@pytest.mark.parametrize('thing_limit, stuff_limit, thing_kept, stuff_kept', [
    (119, 170, True, True),     # thing 7 x 17 = 119 px, stuff 10 x 17 = 170
    (120, 170, False, True),
    (119, 171, True, False)])
def test_area_limits(mode, thing_limit, stuff_limit, thing_kept, stuff_kept):
  out = run(column_logits(left, right, far),
            class_logits((A, 10.0), (S, 10.0), VOID_CENTER),
            post_processing=mode, thing_area_limit=thing_limit,
            stuff_area_limit=stuff_limit)
  panoptic = expected_map((0, 7, (A * 256 + 1) * thing_kept),
                          (7, 17, S * 256 * stuff_kept))
  np.testing.assert_array_equal(out[common.PRED_PANOPTIC][0], panoptic)


def test_per_pixel_class_threshold_voids_the_pixels_of_a_dropped_center():
  # The right center is only 60% sure of its class (< 0.7): its pixels, whose
  # argmax over all centers is that center, become void.
  out = run(column_logits(left, right, far),
            class_logits((A, 10.0), (B, confidence_logit(0.6)), VOID_CENTER),
            post_processing=Options.PER_PIXEL)
  np.testing.assert_array_equal(out[common.PRED_PANOPTIC][0],
                                expected_map((0, 7, A * 256 + 1)))


def test_per_pixel_confidence_threshold():
  # Column 6 (c = 1.5): logits 1 vs -1, p = 0.88; column 7: p = 0.95;
  # every other column p > 0.99. A threshold of 0.9 voids only column 6.
  out = run(column_logits(left, right, far),
            class_logits((A, 10.0), (S, 10.0), VOID_CENTER),
            post_processing=Options.PER_PIXEL, pixel_confidence_threshold=0.9)
  np.testing.assert_array_equal(
      out[common.PRED_PANOPTIC][0],
      expected_map((0, 6, A * 256 + 1), (7, 17, S * 256)))


@pytest.mark.parametrize('first, expected_class', [(A, A), (B, B)])
def test_mask_wise_overlap_filter_and_ranking(first, expected_class):
  # Two centers with identical masks (p = 0.47 each on columns 0-6, both
  # above 0.4): the better-ranked one is pasted; the other finds nothing
  # free and is dropped by the overlap filter.
  confidences = {A: 10.0, B: 8.0} if first == A else {A: 8.0, B: 10.0}
  out = run(column_logits(left, left, right, far),
            class_logits((A, confidences[A]), (B, confidences[B]),
                         (S, 10.0), VOID_CENTER),
            post_processing=Options.MASK_WISE)
  np.testing.assert_array_equal(
      out[common.PRED_PANOPTIC][0],
      expected_map((0, 7, expected_class * 256 + 1), (7, 17, S * 256)))
  winner = 0 if first == A else 1
  labels = [0, 0, S * 256, 0]
  labels[winner] = expected_class * 256 + 1
  np.testing.assert_array_equal(out[common.PRED_SEGMENT_LABELS][0], labels)


def test_mask_wise_never_pastes_a_mask_without_free_pixels():
  # With overlap_threshold 0 any free pixel suffices, but the second of two
  # identical masks has none and stays dropped.
  out = run(column_logits(left, left, right, far),
            class_logits((A, 10.0), (B, 8.0), (S, 10.0), VOID_CENTER),
            post_processing=Options.MASK_WISE, overlap_threshold=0.0)
  np.testing.assert_array_equal(out[common.PRED_SEGMENT_LABELS][0],
                                [A * 256 + 1, 0, S * 256, 0])


@pytest.mark.parametrize('overlap_threshold, second_kept', [(0.6, True),
                                                            (0.7, False)])
def test_mask_wise_overlap_threshold_on_a_partial_overlap(
    overlap_threshold, second_kept):
  # Gentle slopes and pixel threshold 0.3: mask 0 covers columns 0-8, mask 1
  # columns 5-16. Mask 0 is pasted first (ranked by class confidence alone),
  # leaving 8 of mask 1's 12 columns free: 0.67 of it.
  out = run(column_logits(lambda c: 1.6 - c, lambda c: c - 1.6, far),
            class_logits((A, 10.0), (S, 8.0), VOID_CENTER),
            post_processing=Options.MASK_WISE, pixel_confidence_threshold=0.3,
            mask_score_power=0.0, overlap_threshold=overlap_threshold)
  np.testing.assert_array_equal(
      out[common.PRED_PANOPTIC][0],
      expected_map((0, 9, A * 256 + 1), (9, 17, S * 256 * second_kept)))


def test_mask_wise_thing_and_stuff_class_thresholds():
  # Both centers are 60% sure: below the thing threshold 0.7, above the
  # stuff threshold 0.5.
  out = run(column_logits(left, right, far),
            class_logits((A, confidence_logit(0.6)), (S, confidence_logit(0.6)),
                         VOID_CENTER),
            post_processing=Options.MASK_WISE)
  np.testing.assert_array_equal(out[common.PRED_PANOPTIC][0],
                                expected_map((7, 17, S * 256)))


def _stripes_case(mode, jit=False, **options):
  # Stripes: a (sure), s, a (less sure), s; and a void center.
  return run(column_logits(stripe(0), stripe(1), stripe(2), stripe(3), far),
             class_logits((A, 10.0), (S, 10.0), (A, 4.0), (S, 10.0),
                          VOID_CENTER),
             jit=jit, post_processing=mode, **options)


def test_mask_wise_numbers_things_per_class_in_ranking_order():
  # mask_score_power 0 ranks by class confidence alone.
  out = _stripes_case(Options.MASK_WISE, mask_score_power=0.0)
  np.testing.assert_array_equal(
      out[common.PRED_PANOPTIC][0],
      expected_map((0, 4, A * 256 + 1), (4, 8, S * 256), (8, 12, A * 256 + 2),
                   (12, 17, S * 256)))
  np.testing.assert_array_equal(out[common.PRED_SEGMENT_LABELS][0],
                                [257, 768, 258, 768, 0])
  # Swapping the two things' confidences swaps their instance numbers.
  swapped = run(
      column_logits(stripe(0), stripe(1), stripe(2), stripe(3), far),
      class_logits((A, 4.0), (S, 10.0), (A, 10.0), (S, 10.0), VOID_CENTER),
      post_processing=Options.MASK_WISE, mask_score_power=0.0)
  np.testing.assert_array_equal(swapped[common.PRED_SEGMENT_LABELS][0],
                                [258, 768, 257, 768, 0])


@pytest.mark.parametrize('mode', [Options.PER_PIXEL, Options.MASK_WISE])
@pytest.mark.parametrize('stuff_limit, stuff_kept', [(153, True),
                                                     (154, False)])
def test_stuff_centers_of_one_class_merge_for_the_area_limit(
    mode, stuff_limit, stuff_kept):
  # The two s stripes (68 + 85 = 153 pixels) form one segment, instance 0.
  out = _stripes_case(mode, stuff_area_limit=stuff_limit)
  panoptic = out[common.PRED_PANOPTIC][0]
  for (start, stop), center in zip(STRIPES, range(4)):
    region = panoptic[:, start:stop]
    if center in (1, 3):
      assert np.all(region == S * 256 * stuff_kept)
    else:
      assert np.all(region // 256 == A) and len(np.unique(region)) == 1
  things = {panoptic[0, 0], panoptic[0, 8]}
  assert things == {A * 256 + 1, A * 256 + 2}


@pytest.mark.parametrize('mode', [Options.PER_PIXEL, Options.MASK_WISE])
def test_compiles_with_xla_and_matches_graph_mode(mode):
  eager = _stripes_case(mode)
  compiled = _stripes_case(mode, jit=True)
  for key in (common.PRED_PANOPTIC, common.PRED_SEMANTIC,
              common.PRED_INSTANCE, common.PRED_SEGMENT_LABELS):
    np.testing.assert_array_equal(compiled[key], eager[key])
  np.testing.assert_allclose(compiled[common.PRED_SEGMENT_SCORES],
                             eager[common.PRED_SEGMENT_SCORES], rtol=1e-5)


def test_nothing_confident_gives_all_void():
  out = run(column_logits(left, right),
            class_logits(VOID_CENTER, VOID_CENTER),
            post_processing=Options.PER_PIXEL)
  assert not out[common.PRED_PANOPTIC].any()
  assert not out[common.PRED_SEGMENT_LABELS].any()


def test_upsampling_is_bilinear_with_aligned_corners():
  rng = np.random.default_rng(0)
  low = rng.normal(size=(1, 3, 4, 2)).astype(np.float32)
  up = post_processing.upsample_mask_logits(tf.constant(low)).numpy()
  assert up.shape == (1, 9, 13, 2)
  # Output pixel y samples input row y / 4 (aligned corners).
  y, x = 5, 7
  r, c = y / 4, x / 4
  r0, c0 = int(r), int(c)
  dr, dc = r - r0, c - c0
  reference = ((1 - dr) * (1 - dc) * low[0, r0, c0] +
               (1 - dr) * dc * low[0, r0, c0 + 1] +
               dr * (1 - dc) * low[0, r0 + 1, c0] +
               dr * dc * low[0, r0 + 1, c0 + 1])
  np.testing.assert_allclose(up[0, y, x], reference, rtol=1e-5)
  np.testing.assert_allclose(up[0, ::4, ::4], low[0], rtol=1e-6)


@pytest.mark.parametrize('field, value', [
    ('post_processing', Options.POST_PROCESSING_UNSPECIFIED),
    ('pixel_confidence_threshold', 1.5),
    ('thing_area_limit', -1)])
def test_bad_options_name_the_field(field, value):
  with pytest.raises(ValueError, match=field):
    run(column_logits(left, right), class_logits((A, 10.0), (S, 10.0)),
        **{field: value})


@pytest.mark.parametrize('mode', [Options.PER_PIXEL, Options.MASK_WISE])
def test_images_of_a_batch_are_independent(mode):
  # Two different images in one batch give what each gives alone.
  first = (column_logits(stripe(0), stripe(1), stripe(2), stripe(3), far),
           class_logits((A, 10.0), (S, 10.0), (A, 4.0), (S, 10.0),
                        VOID_CENTER))
  second = (column_logits(right, far, left, left, far),
            class_logits((S, 10.0), VOID_CENTER, (B, 9.0), (A, 8.0),
                         VOID_CENTER))
  options = dict(post_processing=mode, thing_area_limit=60,
                 stuff_area_limit=100)
  batch = run(np.concatenate([first[0], second[0]]),
              np.concatenate([first[1], second[1]]), **options)
  for index, (mask, classes) in enumerate((first, second)):
    alone = run(mask, classes, **options)
    for key in (common.PRED_PANOPTIC, common.PRED_SEGMENT_LABELS):
      np.testing.assert_array_equal(batch[key][index], alone[key][0])
  assert batch[common.PRED_PANOPTIC][1].any()

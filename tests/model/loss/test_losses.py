"""Each loss on a case small enough to compute by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt.model.loss import builder
from cmt.model.loss import instance_discrimination
from cmt.model.loss import matcher
from cmt.model.loss import pq_style
from cmt.model.loss import strided_targets as gt_lib
from cmt.protos import trainer_pb2
from tests.model.loss import toy

_TYPES = trainer_pb2.InstanceDiscriminationOptions
LN3 = math.log(3.0)


def _losses(options, gt, outputs):
  loss_fn = builder.build_loss(options, toy.DATASET)
  return {k: float(v) for k, v in loss_fn(gt, outputs).items()}


def _two_pixel_case():
  """1 x 2 image: pixel 0 is mask 0 (class 1), pixel 1 void; N = 2 slots.

  Every slot puts probability 1/2 on pixel 0, so both have dice
  0.5 / ((1 + 0.5) / 2) = 2/3; over the 4 classes (void + 3) slot 0
  predicts class 1 with probability 3 / (1 + 3 + 1 + 1) = 0.5, slot 1 with
  1/4, so mask 0 is matched to slot 0.
  """
  gt = toy.ground_truth([[[0, -1]]], [[1, 0]])
  outputs = {
      common.MASK_LOGITS: np.zeros((1, 1, 2, 2), np.float32),
      common.CLASS_LOGITS: np.array([[[0.0, LN3, 0.0, 0.0],
                                      [0.0, 0.0, 0.0, 0.0]]], np.float32),
      common.SEMANTIC_LOGITS: np.array([[[[0.0, LN3, 0.0, 0.0],
                                          [5.0, 0.0, 0.0, 0.0]]]],
                                       np.float32),
  }
  return gt, outputs


def test_pq_style_loss_by_hand():
  gt, outputs = _two_pixel_case()
  alpha, weight = 0.75, 3.0
  # Class term: slot 0 -> class 1 weighted by dice 2/3; slot 1 -> void
  # (probability 1/4 with logits all 0) weighted by 1 - alpha; over N = 2.
  dice = 0.5 / (0.75 + 1e-5)
  class_term = (alpha * dice * -math.log(0.5)
                + (1 - alpha) * -math.log(0.25)) / 2
  # Mask term: class prob 0.5 x (1 - (2 * 0.5 + 1) / (0.5 + 1 + 1)), x a/N.
  mask_term = alpha / 2 * 0.5 * (1 - 2.0 / 2.5)
  losses = _losses(toy.options(pq_style=weight, alpha=alpha), gt, outputs)
  assert losses[common.LOSS_PQ_STYLE] == pytest.approx(
      weight * (class_term + mask_term), rel=1e-5)
  assert losses[common.LOSS_TOTAL] == pytest.approx(
      losses[common.LOSS_PQ_STYLE])


def _check_void_ratio_loss(gt, outputs, alpha, dice, void_ratio,
                           mask_dice):
  """The PQ-style loss with VOID_RATIO weights against its value by hand
  for the two-pixel outputs: matched slot 0 (class probability 0.5, dice
  `dice`, soft mask dice `mask_dice`), unmatched slot 1 (void probability
  0.25, weight `void_ratio`)."""
  class_term = (alpha * dice * -math.log(0.5)
                + (1 - alpha) * void_ratio * -math.log(0.25)) / 2
  mask_term = alpha / 2 * 0.5 * (1 - mask_dice)
  losses = _losses(toy.options(
      pq_style=1.0, alpha=alpha,
      unmatched_weight=trainer_pb2.PQStyleLossOptions.VOID_RATIO),
                   gt, outputs)
  assert losses[common.LOSS_PQ_STYLE] == pytest.approx(
      class_term + mask_term, rel=1e-5)


def test_pq_style_void_ratio_weight_by_hand():
  gt, outputs = _two_pixel_case()
  # Slot 1 (unmatched) has half its mask, 0.5 of 1.0, on the void pixel:
  # its push to void is weighted by 0.5 instead of 1.
  _check_void_ratio_loss(gt, outputs, alpha=0.75, dice=0.5 / (0.75 + 1e-5),
                         void_ratio=0.5 / (1.0 + 1e-5), mask_dice=2.0 / 2.5)


def test_void_ratio_weight_is_floored_and_carries_no_gradient():
  # No void pixel: the unmatched slot 1 has void ratio 0, floored to 1e-5.
  gt = toy.ground_truth([[[0, 0]]], [[1, 0]])
  _, outputs = _two_pixel_case()
  alpha = 0.75
  # Each slot holds 1/2 of both pixels.
  _check_void_ratio_loss(gt, outputs, alpha, dice=1.0 / (1.5 + 1e-5),
                         void_ratio=1e-5, mask_dice=3.0 / 4.0)
  # The weights (matched dice, void ratio) are stop-gradient: the class
  # term reaches the class logits only.
  mask_logits = tf.Variable(outputs[common.MASK_LOGITS])
  targets = gt_lib.mask_targets(gt, 1, 2)
  with tf.GradientTape() as tape:
    matching = matcher.match(targets, mask_logits,
                             outputs[common.CLASS_LOGITS])
    term = pq_style.class_term(matching, targets,
                               outputs[common.CLASS_LOGITS], alpha,
                               void_ratio_weight=True)
  assert tape.gradient(term, mask_logits) is None


def test_mask_id_cross_entropy_by_hand():
  gt, outputs = _two_pixel_case()
  outputs[common.MASK_LOGITS] = np.array([[[[1.0, 0.0], [0.0, 9.0]]]],
                                         np.float32)
  # Mask 0 goes to slot 0 (higher dice and class probability). Only pixel
  # 0 counts: -log(e / (e + 1)); the void pixel is ignored.
  expected = 0.3 * math.log(1 + math.exp(-1.0))
  losses = _losses(toy.options(mask_id=0.3), gt, outputs)
  assert losses[common.LOSS_MASK_ID] == pytest.approx(expected, rel=1e-5)


def test_semantic_cross_entropy_by_hand():
  gt, outputs = _two_pixel_case()
  # Pixel 0 has class 1 with probability 3 / 6; pixel 1 is void, ignored.
  losses = _losses(toy.options(semantic=2.0), gt, outputs)
  assert losses[common.LOSS_SEMANTIC] == pytest.approx(
      2.0 * math.log(2.0), rel=1e-5)


def test_terms_that_are_exactly_zero_do_not_count():
  # DeepLab2's normaliser: pixel 0 is classified with certainty (its float32
  # cross-entropy is exactly 0), so the mean is over pixel 1 alone: ln 4,
  # not ln 4 / 2.
  gt = toy.ground_truth([[[0, 1]]], [[1, 2]])
  outputs = {common.SEMANTIC_LOGITS: np.array(
      [[[[0.0, 200.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]], np.float32)}
  losses = _losses(toy.options(semantic=1.0), gt, outputs)
  assert losses[common.LOSS_SEMANTIC] == pytest.approx(math.log(4.0),
                                                       rel=1e-5)


def test_pq_style_class_term_counts_its_non_zero_terms():
  gt, outputs = _two_pixel_case()
  # Slot 1 predicts void with certainty: its term is exactly 0, so the class
  # term is slot 0's alone, divided by 1 rather than N = 2 (DeepLab2). The
  # mask term keeps alpha / N.
  outputs[common.CLASS_LOGITS][0, 1] = [200.0, 0.0, 0.0, 0.0]
  alpha = 0.75
  dice = 0.5 / (0.75 + 1e-5)
  class_term = alpha * dice * -math.log(0.5)
  mask_term = alpha / 2 * 0.5 * (1 - 2.0 / 2.5)
  losses = _losses(toy.options(pq_style=1.0, alpha=alpha), gt, outputs)
  assert losses[common.LOSS_PQ_STYLE] == pytest.approx(
      class_term + mask_term, rel=1e-5)


def _mask_approximation_case(shift):
  """5 x 5 grid (coordinates 0, .25, .5, .75, 1); mask 0 on rows 1-2, cols
  0-1: h in [.25, .5] (mean .375), w in [0, .25] (mean .125)."""
  mask_id = -np.ones((1, 5, 5), np.int32)
  mask_id[0, 1:3, 0:2] = 0
  gt = toy.ground_truth(mask_id, [[1, 0]])
  mask_logits = np.zeros((1, 5, 5, 3), np.float32)
  mask_logits[0, 1:3, 0:2, 1] = 10.0  # Slot 1 covers the mask.
  points = np.full((1, 3, 4, 2), 0.9, np.float32)
  points[0, 1] = [[0.25, 0.0], [0.5, 0.25], [0.375, 0.125], [0.375, 0.125]]
  points[0, 1, :, 0] += shift
  outputs = {common.MASK_LOGITS: mask_logits,
             common.CLASS_LOGITS: np.zeros((1, 3, 4), np.float32),
             common.REFERENCE_POINTS: points}
  return gt, outputs


def test_mask_approximation_loss_by_hand():
  losses = _losses(toy.options(mask_approximation=1.0),
                   *_mask_approximation_case(shift=0.0))
  assert losses[common.LOSS_MASK_APPROXIMATION] == pytest.approx(0.0,
                                                                 abs=1e-6)
  # Shifting the points by 0.1 along h: L_ext = (0.1 + 0.1) / 4 and
  # L_cen = 0.1 / 2.
  losses = _losses(toy.options(mask_approximation=2.0),
                   *_mask_approximation_case(shift=0.1))
  assert losses[common.LOSS_MASK_APPROXIMATION] == pytest.approx(
      2.0 * (0.2 / 4 + 0.1 / 2), rel=1e-5)


def _discrimination_case():
  """2 x 2 grid: pixels a, b on thing mask 0 with feature e1, pixel c on
  stuff mask 1 with feature e2, pixel d void (feature e1)."""
  gt = toy.ground_truth([[[0, 0], [1, -1]]], [[1, 2]])
  features = np.array([[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]]],
                      np.float32)
  return gt, {common.PIXEL_FEATURES: features}


def test_pixel_contrastive_loss_by_hand():
  gt, outputs = _discrimination_case()
  # tau = 1. Anchors a, b: logits (1, 1, 0) over {a, b, c}, target 1/2 on
  # a and b -> log(2 + 1/e). Anchor c: logits (0, 0, 1), target c ->
  # log(1 + 2/e). The void pixel d is sampled (A = 4 = all pixels) but
  # takes part neither as anchor nor in any denominator.
  expected = (2 * math.log(2 + math.exp(-1)) + math.log(1 + 2 * math.exp(-1))
              ) / 3
  losses = _losses(toy.options(instance=1.0, temperature=1.0, sample_count=4,
                               discrimination=_TYPES.PIXEL_CONTRASTIVE),
                   gt, outputs)
  assert losses[common.LOSS_INSTANCE_DISCRIMINATION] == pytest.approx(
      expected, rel=1e-5)


def test_mask_center_loss_by_hand():
  gt, outputs = _discrimination_case()
  # Centres e1 (mask 0) and e2 (mask 1); only thing pixels a, b are
  # anchors: logits (1, 0) / tau with tau = 0.5 -> log(1 + e^-2).
  losses = _losses(toy.options(instance=1.0, temperature=0.5,
                               discrimination=_TYPES.MASK_CENTER),
                   gt, outputs)
  assert losses[common.LOSS_INSTANCE_DISCRIMINATION] == pytest.approx(
      math.log(1 + math.exp(-2.0)), rel=1e-5)


def test_sampling_prefers_small_masks_and_skips_void():
  # 16 x 16 grid per image: a 2 x 2 mask, a void 2 x 2 block, the rest one
  # large mask. With sample temperature 1.5 a small-mask pixel weighs
  # 4^-1.5 = 1/8 against 248^-1.5 for a large-mask one, so all four are
  # drawn; uniform sampling (temperature 0) draws 32 / 252 of them.
  mask_id = np.zeros((8, 16, 16), np.int32)
  mask_id[:, :2, :2] = 1
  mask_id[:, -2:, -2:] = -1
  targets = gt_lib.mask_targets(toy.ground_truth(mask_id, [[1, 2]] * 8),
                                16, 16)
  tf.random.set_seed(1)
  small = (mask_id.reshape(8, -1) == 1)
  void = (mask_id.reshape(8, -1) == -1)

  def drawn(indices, which):
    return np.take_along_axis(which, indices.numpy(), axis=1).sum(axis=1)

  biased = instance_discrimination.sample_pixels(targets, 32, 1.5)
  assert biased.shape == (8, 32)
  np.testing.assert_array_equal(drawn(biased, small), 4)
  np.testing.assert_array_equal(drawn(biased, void), 0)
  for indices in biased.numpy():
    assert len(set(indices)) == 32  # Without replacement.
  uniform = instance_discrimination.sample_pixels(targets, 32, 0.0)
  assert drawn(uniform, small).mean() < 2.0
  np.testing.assert_array_equal(drawn(uniform, void), 0)

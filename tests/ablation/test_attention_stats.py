"""The Fig. 1 statistics (`cmt.ablation.attention_stats`) on maps whose
values are worked out by hand."""

import math

import numpy as np
import pytest

from cmt.ablation import attention_stats as stats


def test_a_grid_value_spreads_evenly_over_its_nearest_pixels():
  # A 2 x 2 grid on a 3 x 3 crop (aligned corners): pixel rows/cols 0 -> 0,
  # 1 and 2 -> 1, so the cells hold 1, 2, 2 and 4 pixels.
  cells = stats.grid_cells((2, 2), (3, 3), (3, 3))
  assert cells.tolist() == [[0, 1, 1], [2, 3, 3], [2, 3, 3]]
  distribution = stats.pixel_distribution(np.ones((2, 2)), cells)
  np.testing.assert_allclose(distribution, [[1 / 4, 1 / 8, 1 / 8],
                                            [1 / 8, 1 / 16, 1 / 16],
                                            [1 / 8, 1 / 16, 1 / 16]])
  # Cut to a 2 x 2 valid region: each cell's mass stays in its valid pixels.
  cut = stats.pixel_distribution(np.ones((2, 2)),
                                 stats.grid_cells((2, 2), (3, 3), (2, 2)))
  np.testing.assert_allclose(cut, [[1 / 4, 1 / 4], [1 / 4, 1 / 4]])


def test_inside_share_and_coverage_by_hand():
  mask = np.zeros((4, 4), bool)
  mask[0, :] = True  # 4 pixels
  uniform_half = np.zeros((4, 4))
  uniform_half[0, :] = 1 / 8
  uniform_half[3, :] = 1 / 8
  assert stats.inside_share(uniform_half, mask) == pytest.approx(0.5)
  assert stats.coverage(uniform_half, mask) == pytest.approx(1.0)
  two_of_four = np.zeros((4, 4))
  two_of_four[0, :2] = 0.5  # H = log 2 on |M| = 4
  assert stats.coverage(two_of_four, mask) == pytest.approx(0.5)
  # 8 pixels, masses 1/2, 1/4, 1/4: H = 1.5 log 2, log |M| = 3 log 2.
  mask8 = np.zeros((4, 4), bool)
  mask8[:2] = True
  skewed = np.zeros((4, 4))
  skewed[0, 0], skewed[0, 1], skewed[1, 3] = 0.5, 0.25, 0.25
  assert stats.coverage(skewed, mask8) == pytest.approx(0.5)
  one_pixel = np.zeros((4, 4), bool)
  one_pixel[2, 2] = True
  assert stats.coverage(uniform_half + 0.01, one_pixel) == 1.0
  assert math.isnan(stats.coverage(uniform_half, one_pixel))  # no mass on M


def test_spot_is_the_coverage_of_one_grid_cell():
  # A 3 x 3 grid on a 9 x 9 crop: rows 0-1 -> 0, 2-5 -> 1, 6-8 -> 2.
  cells = stats.grid_cells((3, 3), (9, 9), (9, 9))
  mask = np.zeros((9, 9), bool)
  mask[1:3, 0:2] = True  # 2 pixels in cell 0, 2 in cell 3
  assert stats.spot_coverage(mask, cells) == pytest.approx(
      math.log(2) / math.log(4))
  inside_one = np.zeros((9, 9), bool)
  inside_one[2:6, 2:6] = True  # exactly cell 4
  assert stats.spot_coverage(inside_one, cells) == pytest.approx(1.0)
  dot = np.zeros((9, 9), bool)
  dot[4, 4] = True
  assert stats.spot_coverage(dot, cells) == 1.0


def test_reference_hits_round_to_pixels_and_miss_outside_the_image():
  # Crop 5 x 5: (h, w) in [0, 1] -> pixels (4 h, 4 w).
  points = np.array([[0, 0], [0.5, 0.5], [1, 1], [0.25, 0.0]])
  mask = np.zeros((5, 5), bool)
  mask[2, 2] = mask[1, 0] = True
  assert stats.reference_hits(points, (5, 5), mask) == 0.5
  # A 3 x 3 image in a 5 x 5 crop: (4, 4) lies on the padding.
  small = np.ones((3, 3), bool)
  assert stats.reference_hits(points, (5, 5), small) == 0.75


def test_matched_center_is_the_best_iou_mask():
  logits = np.zeros((6, 6, 3))
  logits[:3, :, 2] = 5.0
  logits[3:, :3, 1] = 5.0
  masks = np.zeros((2, 6, 6), bool)
  masks[0, 3:, :2] = True   # 6 pixels inside center 1's 9
  masks[1, :2, :] = True    # 12 pixels inside center 2's 18
  centers, ious = stats.matched_centers(logits, (6, 6), masks)
  assert centers.tolist() == [1, 2]
  np.testing.assert_allclose(ious, [6 / 9, 12 / 18])


def _one_image():
  """A 9 x 9 image: thing 1001 = rows 0-1, cols 0-1 (= cell 0 of the 3 x 3
  attention grid), stuff 7 elsewhere; center 1 segments the thing, center
  0 the stuff."""
  ids = np.full((9, 9), 7)
  ids[:2, :2] = 1001
  logits = np.full((9, 9, 3), -50.0)
  logits[..., 0] = 50.0
  logits[:2, :2, 0] = -50.0
  logits[:2, :2, 1] = 50.0
  attention = np.zeros((3, 3, 3))
  attention[1, 0, 0] = attention[1, 2, 2] = 0.5  # half on the thing's cell
  attention[0] = 1.0
  assignment = np.zeros((3, 3, 3))
  assignment[1, 0, 0] = 1.0
  assignment[0] = 1.0
  points = np.zeros((3, 2, 2))
  points[1] = [[0.0, 0.0], [1.0, 1.0]]  # pixels (0, 0) and (8, 8)
  maps = stats.center_maps({'attention': attention, 'assignment': assignment,
                            'mask_logits': logits})
  return ids, logits, maps, points


def test_segment_statistics_of_an_image():
  ids, logits, maps, points = _one_image()
  rows, centers = stats.segment_statistics(maps, logits, points, ids,
                                           [1001, 7], (9, 9))
  assert centers.tolist() == [1, 0]
  thing, stuff = rows
  assert thing['iou'] == 1.0 and thing['spot'] == pytest.approx(1.0)
  # Half of the attention on the thing's cell, spread evenly over it.
  assert thing['attention_inside'] == pytest.approx(0.5)
  assert thing['attention_coverage'] == pytest.approx(1.0)
  assert thing['assignment_inside'] == pytest.approx(1.0)
  assert thing['mask_inside'] == pytest.approx(1.0)
  assert thing['reference_hit'] == 0.5
  assert thing['reference_chance'] == pytest.approx(4 / 81)
  # Center 0 attends 1/9 to each cell; its cells hold 2, 4, 3 rows times
  # 2, 4, 3 columns. The stuff is every cell but cell 0: 8/9 of the mass,
  # 1/8 per cell once renormalised, spread over r c pixels each, so
  # H = log 8 + (sum over the 8 cells of log r c) / 8.
  assert stuff['attention_inside'] == pytest.approx(8 / 9)
  entropy = math.log(8) + (6 * math.log(24) - math.log(4)) / 8
  assert stuff['attention_coverage'] == pytest.approx(entropy / math.log(77))
  assert stuff['reference_hit'] == 0.0


def test_run_means_skip_undefined_values():
  measured = {
      'things': {'iou': [1.0, 0.5], 'attention_coverage': [0.2, math.nan]},
      'stuff': {'iou': []}, 'unmatched': {'things': 1, 'stuff': 0}}
  means = stats.run_means(measured)
  assert means['things']['attention_coverage'] == pytest.approx(0.2)
  assert means['things']['segments'] == 2
  assert means['things']['unmatched'] == 1
  assert math.isnan(means['stuff']['attention_inside'])

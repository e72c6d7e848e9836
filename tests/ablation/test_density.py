"""The attention density statistic (`cmt.ablation.density`), on hand-made
attention maps."""

import numpy as np
import pytest

from cmt.ablation import density


def test_uniform_attention_on_the_object_is_dense():
  mask = np.zeros((9, 9), bool)
  mask[2:5, 3:7] = True
  uniform = mask / mask.sum()
  assert density.segment_density(uniform, mask) == (1.0, pytest.approx(1.0))


def test_a_spike_is_sparse_and_attention_elsewhere_has_no_mass():
  mask = np.zeros((9, 9), bool)
  mask[2:5, 3:7] = True  # 12 pixels
  spike = np.zeros((9, 9))
  spike[3, 4] = 1.0
  assert density.segment_density(spike, mask) == (1 / 12, 1.0)
  away = np.zeros((9, 9))
  away[8, 8] = 1.0
  assert density.segment_density(away, mask) == (0.0, 0.0)


def test_attention_distribution_sums_to_one_at_image_size():
  attention = np.random.default_rng(0).uniform(size=(3, 3))
  distribution = density.attention_distribution(attention, (9, 9))
  assert distribution.shape == (9, 9)
  assert distribution.sum() == pytest.approx(1.0)
  # Aligned corners: the corners keep the grid's values (up to the scale).
  ratio = distribution[0, 0] / attention[0, 0]
  assert distribution[8, 8] == pytest.approx(attention[2, 2] * ratio)


def test_each_segment_gets_the_center_that_segments_it():
  assignment = np.zeros((6, 6), int)
  assignment[:3] = 2
  assignment[3:, :3] = 1
  masks = np.zeros((2, 6, 6), bool)
  masks[0, 3:, :2] = True   # inside center 1's region
  masks[1, :2, :] = True    # inside center 2's region
  assert density.best_iou_centers(assignment, masks).tolist() == [1, 2]


def test_image_densities_uses_the_segment_center_attention():
  ids = np.full((9, 9), 5000)
  ids[0:4, 0:4] = 1001
  logits = np.zeros((9, 9, 3))
  logits[..., 0] = 1.0
  logits[0:4, 0:4, 1] = 5.0  # center 1 segments the thing
  attention = np.zeros((3, 9, 9))
  attention[1, 0:4, 0:4] = 1.0  # uniform on the thing
  attention[0, 8, 8] = 1.0
  ((dense, mass, spread),) = density.image_densities(logits, attention, ids,
                                                     [1001])
  assert dense == 1.0 and mass == pytest.approx(1.0, abs=0.02)
  assert spread == pytest.approx(16 / 81)  # uniform on 16 of 81 cells

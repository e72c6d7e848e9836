"""Targets on a hand-made label against a numpy reference."""

import numpy as np
import pytest

from cmt import common
from cmt.data import crop_targets
from cmt.data import dataset_info

# Classes 1, 2 are things, 3, 4 stuff.
INFO = dataset_info.from_categories('toy', [
    {'id': 10, 'name': 'a', 'isthing': 1}, {'id': 20, 'name': 'b',
                                            'isthing': 1},
    {'id': 30, 'name': 'c', 'isthing': 0}, {'id': 40, 'name': 'd',
                                            'isthing': 0}])
D = dataset_info.LABEL_DIVISOR
V = 0                  # void
S3, S4 = 3 * D, 4 * D  # stuff
A1, A2 = 1 * D + 1, 1 * D + 2  # two things of class 1
B1 = 2 * D + 1         # a thing of class 2
CROWD = 2 * D          # crowd of class 2

LABEL = np.array([
    [S3, S3, S3, S3, S3, S4, S4],
    [S3, A1, A1, S3, B1, S4, S4],
    [S3, A1, A1, V, B1, CROWD, CROWD],
    [A2, A2, S4, S4, S4, CROWD, V],
], np.int32)


def reference_targets(label, max_num_masks):
  """Masks sorted by area, ties by first raster occurrence; K largest."""
  semantic = label // D
  is_thing = np.array(INFO.thing_mask)[semantic]
  crowd = is_thing & (label % D == 0)
  has_mask = (semantic != 0) & ~crowd
  values, first = np.unique(label[has_mask], return_index=True)
  raster_first = [np.flatnonzero((label == v).reshape(-1))[0] for v in values]
  areas = [(label == v).sum() for v in values]
  order = sorted(range(len(values)), key=lambda i: (-areas[i],
                                                    raster_first[i]))
  kept = [values[i] for i in order[:max_num_masks]]
  mask_id = np.full(label.shape, -1)
  for k, value in enumerate(kept):
    mask_id[label == value] = k
  mask_class = np.zeros(max_num_masks, int)
  mask_class[:len(kept)] = np.array(kept, int) // D
  valid = np.zeros(max_num_masks)
  valid[:len(kept)] = 1
  return {
      common.GT_SEMANTIC: np.where(crowd, 0, semantic),
      common.GT_PANOPTIC: label,
      common.GT_CROWD: crowd.astype(float), common.GT_MASK_ID: mask_id,
      common.GT_MASK_CLASS: mask_class, common.GT_MASK_VALID: valid,
      common.GT_MASK_IS_THING: np.array(INFO.thing_mask)[mask_class] * valid,
      common.GT_PIXEL_WEIGHT: (mask_id >= 0).astype(float),
  }


@pytest.mark.parametrize('max_num_masks', [8, 3])
def test_targets_match_reference(max_num_masks):
  got = crop_targets.compute_targets(LABEL, INFO, max_num_masks)
  want = reference_targets(LABEL, max_num_masks)
  assert sorted(got) == sorted(want)
  for key, value in want.items():
    np.testing.assert_array_equal(got[key].numpy(), value, err_msg=key)
    assert got[key].shape == value.shape


def test_hand_checked_values():
  got = {k: v.numpy() for k, v in
         crop_targets.compute_targets(LABEL, INFO, 8).items()}
  # Areas: S3 8, S4 7, A1 4, A2 2, B1 2 (B1 first in raster order).
  np.testing.assert_array_equal(got[common.GT_MASK_CLASS],
                                [3, 4, 1, 2, 1, 0, 0, 0])
  np.testing.assert_array_equal(got[common.GT_MASK_IS_THING],
                                [0, 0, 1, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(got[common.GT_MASK_VALID],
                                [1, 1, 1, 1, 1, 0, 0, 0])
  assert got[common.GT_MASK_ID][3, 0] == 4   # A2
  assert got[common.GT_MASK_ID][1, 4] == 3   # B1
  # Crowd: void in the semantic map (as DeepLab2 trains on COCO), its class
  # kept in the panoptic label, no mask, no weight.
  assert got[common.GT_CROWD].sum() == 3
  assert got[common.GT_SEMANTIC][2, 5] == 0
  assert got[common.GT_PANOPTIC][2, 5] == CROWD
  assert got[common.GT_SEMANTIC][1, 4] == 2  # B1, a non-crowd thing of class 2
  assert got[common.GT_MASK_ID][2, 5] == -1
  assert got[common.GT_PIXEL_WEIGHT][2, 5] == 0
  assert got[common.GT_PIXEL_WEIGHT][2, 3] == 0  # void
  assert got[common.GT_PIXEL_WEIGHT].sum() == LABEL.size - 3 - 2


def test_dropped_masks_beyond_k_get_no_weight():
  got = {k: v.numpy() for k, v in
         crop_targets.compute_targets(LABEL, INFO, 2).items()}
  np.testing.assert_array_equal(got[common.GT_MASK_CLASS], [3, 4])
  assert got[common.GT_MASK_ID][1, 1] == -1   # A1 dropped
  assert got[common.GT_PIXEL_WEIGHT][1, 1] == 0
  assert got[common.GT_PIXEL_WEIGHT].sum() == 8 + 7


def test_all_void_label():
  got = crop_targets.compute_targets(np.zeros((3, 3), np.int32), INFO, 4)
  assert (got[common.GT_MASK_ID].numpy() == -1).all()
  assert got[common.GT_MASK_VALID].numpy().sum() == 0

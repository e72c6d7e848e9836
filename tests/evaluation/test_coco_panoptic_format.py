"""COCO panoptic colour ids, segment boxes and areas."""

import numpy as np
import pytest

from cmt.data import panoptic_label
from cmt.evaluation import coco_panoptic_format


def test_colour_ids_round_trip():
  ids = np.random.default_rng(0).integers(0, 256 ** 3, (5, 7))
  rgb = panoptic_label.id_to_rgb(ids)
  assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)
  np.testing.assert_array_equal(panoptic_label.rgb_to_id(rgb), ids)
  # id = R + 256 G + 256^2 B
  np.testing.assert_array_equal(
      panoptic_label.id_to_rgb(np.array([[1 + 2 * 256 + 3 * 65536]])),
      [[[1, 2, 3]]])
  with pytest.raises(ValueError, match='segment ids'):
    panoptic_label.id_to_rgb(np.array([[256 ** 3]]))


@pytest.mark.parametrize('scale', [1, 100_000])  # counted / sorted paths
def test_segment_areas_and_boxes(scale):
  ids = np.zeros((6, 8), np.int64)
  ids[1:3, 2:7] = 5 * scale            # x 2..6, y 1..2
  ids[4, 0] = 9 * scale                # a single pixel
  ids[3:6, 7] = 5 * scale              # same segment, disjoint part
  values, areas, boxes = coco_panoptic_format.segments_of_ids(ids)
  np.testing.assert_array_equal(values, [5 * scale, 9 * scale])
  np.testing.assert_array_equal(areas, [13, 1])
  np.testing.assert_array_equal(boxes, [[2, 1, 6, 5], [0, 4, 1, 1]])


def test_default_image_id():
  assert coco_panoptic_format.default_image_id('000000142238') == 142238
  assert coco_panoptic_format.default_image_id('frame_7') == 'frame_7'

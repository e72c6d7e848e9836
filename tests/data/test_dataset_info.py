"""Dataset descriptions: COCO built in, custom ones from categories JSON."""

import json

import pytest

from cmt.data import dataset_info
from cmt.protos import dataset_pb2


def test_coco_is_built_in(coco_sample):
  info = dataset_info.get_dataset_info(
      dataset_pb2.DatasetOptions(dataset='coco_panoptic'))
  assert info.num_classes == 133 and sum(info.thing_mask) == 80
  assert info.label_divisor == 256 and info.dataset_ids[0] == 0
  # Same classes, in the same contiguous order, as the official file.
  official = dataset_info.from_categories_json(
      str(coco_sample / 'panoptic_coco_categories.json'))
  assert [c.dataset_id for c in info.categories] == [
      c.dataset_id for c in official.categories]
  assert info.thing_mask == official.thing_mask


def test_custom_dataset_from_categories_json(tmp_path):
  path = tmp_path / 'categories.json'
  path.write_text(json.dumps([
      {'id': 7, 'name': 'road', 'isthing': 0},
      {'id': 3, 'name': 'car', 'isthing': 1}]))
  info = dataset_info.get_dataset_info(
      dataset_pb2.DatasetOptions(categories_json=str(path)))
  assert info.class_names == ('void', 'car', 'road')
  assert info.thing_mask == (False, True, False)
  assert info.to_class_id(7) == 2 and info.dataset_ids == (0, 3, 7)


def test_unknown_dataset_is_named():
  with pytest.raises(ValueError, match="'cityscapes'"):
    dataset_info.get_dataset_info(
        dataset_pb2.DatasetOptions(dataset='cityscapes'))

"""`cmt-ablate`'s Fig. 1 layout (`cmt.ablation.figure`) from hand-made
figure material."""

import numpy as np

from cmt.ablation import figure
from cmt.ablation import run_one


def _material(with_assignment: bool) -> dict:
  ids = np.full((9, 9), 7)
  ids[:2, :2] = 1001   # 4 pixels
  ids[5:, 5:] = 1002   # 16 pixels: the larger thing
  maps = np.random.default_rng(0).uniform(size=(3, 3, 3))
  material = {'image': np.full((9, 9, 3), 90, np.uint8), 'ids': ids,
              'crop': np.array([9, 9]), 'map_attention': maps,
              'map_mask': maps[::-1],
              'things_segments': np.array([1001, 1002]),
              'things_centers': np.array([2, -1]),  # 1002: no match
              'stuff_segments': np.array([7]), 'stuff_centers': np.array([0])}
  if with_assignment:
    material['map_assignment'] = maps ** 2
  return material


def test_segments_are_the_largest_things_then_the_largest_stuff():
  material = _material(False)
  assert figure.chosen_segments(material, num_things=1) == [
      ('things', 1002), ('stuff', 7)]
  assert figure.matched_center(material, 'things', 1001) == 2


def test_two_rows_per_model_one_column_per_center(tmp_path):
  material = _material(True)
  path = tmp_path / 'material.npz'
  run_one.save_figure_material(str(path), {
      'image': material['image'], 'ids': material['ids'], 'crop': [9, 9],
      'map_attention': material['map_attention'],
      'map_mask': material['map_mask'],
      'map_assignment': material['map_assignment'],
      'things': {'segments': [1001, 1002], 'centers': [2, -1]},
      'stuff': {'segments': [7], 'centers': [0]}})
  loaded = figure.load_material(str(path))
  np.testing.assert_array_equal(loaded['things_centers'], [2, -1])
  image = figure.figure([('baseline', _material(False)), ('CMT', loaded)])
  # 3 segments + the image column; 2 models x 2 rows of 160-px panels
  # under 12-px titles, 6-px margins.
  assert image.size == (4 * 166 + 6, 4 * (160 + 12 + 6) + 6)
  assert np.asarray(image).std() > 10

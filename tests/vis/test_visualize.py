"""cmt-visualize: Fig. 5 and Fig. 1 from a tiny model; drawing helpers."""

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from cmt import common
from cmt import visualize
from cmt.vis import colors
from cmt.vis import drawing
from cmt.vis import layout


def test_nearest_upsample_matches_tf_aligned_corners():
  values = np.arange(5 * 7).reshape(5, 7)
  expected = tf.compat.v1.image.resize(
      values[None, ..., None], [17, 25], method='nearest',
      align_corners=True)[0, ..., 0].numpy()
  np.testing.assert_array_equal(visualize.nearest_upsample(values, (17, 25)),
                                expected)


def test_bilinear_upsample_matches_tf_aligned_corners():
  values = np.random.default_rng(0).random((5, 4))
  expected = tf.compat.v1.image.resize(
      values[None, ..., None], [17, 13], method='bilinear',
      align_corners=True)[0, ..., 0].numpy()
  np.testing.assert_allclose(visualize.bilinear_upsample(values, (17, 13)),
                             expected, atol=1e-6)


def test_clustering_map_is_argmax_of_softmax_over_centers():
  logits = np.random.default_rng(1).normal(size=(5, 5, 6))
  result = visualize.clustering_map(logits, (17, 17), (10, 17))
  assert result.shape == (10, 17)
  # Crop pixel (4 r, 4 c) sits on grid cell (r, c).
  np.testing.assert_array_equal(result[::4, ::4], logits.argmax(-1)[:3])


def test_kept_centers_rank_by_score_then_fall_back_to_confidence():
  class_logits = np.zeros((4, 3))
  class_logits[2, 1] = 5.0
  kept = visualize.kept_centers(np.array([0, 257, 0, 513]), class_logits,
                                np.array([0, 0.2, 0, 0.9]), 2)
  assert kept.tolist() == [3, 1]
  fallback = visualize.kept_centers(np.zeros(4, int), class_logits,
                                    np.zeros(4), 2)
  assert fallback[0] == 2 and len(fallback) == 2


def test_points_in_pixels_spans_the_crop():
  points = np.array([[0.0, 0.0], [1.0, 0.5]])
  np.testing.assert_allclose(visualize.points_in_pixels(points, (65, 129)),
                             [[0, 0], [64, 64]])


def test_segment_colours_differ_and_void_is_black():
  class_colors = np.array([(0, 0, 0), (200, 30, 30), (30, 200, 30)],
                          np.uint8)
  panoptic = np.array([[0, 257, 258], [259, 512, 512]])
  rgb = colors.panoptic_colors(panoptic, class_colors, 256)
  assert rgb[0, 0].tolist() == [0, 0, 0]
  assert rgb[1, 1].tolist() == [30, 200, 30]  # stuff: its class colour
  things = {tuple(rgb[0, 1]), tuple(rgb[0, 2]), tuple(rgb[1, 0])}
  assert len(things) == 3


def test_heat_colours_run_black_to_white():
  ramp = colors.heat_colors(np.array([0.0, 0.5, 1.0]))
  assert ramp[0].tolist() == [0, 0, 0] and ramp[2].tolist() == [255] * 3
  assert ramp[1, 0] == 255 and ramp[1, 2] == 0


def test_boundaries_mark_both_sides_of_a_label_change():
  labels = np.array([[1, 1, 2], [1, 1, 2]])
  np.testing.assert_array_equal(drawing.boundaries(labels),
                                [[False, True, True], [False, True, True]])


def test_overlay_draws_names_only_on_big_segments():
  image = np.full((120, 160, 3), 100, np.uint8)
  panoptic = np.zeros((120, 160), int)
  panoptic[:, :120] = 257
  panoptic[0, 159] = 513  # one pixel: no room for a name
  class_colors = np.array([(0, 0, 0), (250, 0, 0), (0, 0, 250)], np.uint8)
  with_names = np.asarray(drawing.panoptic_overlay(
      image, panoptic, class_colors, ['void', 'thing', 'tiny'], 256))
  without = np.asarray(drawing.panoptic_overlay(
      image, panoptic, class_colors, ['void', 'thing', 'tiny'], 256,
      draw_names=False))
  changed = np.any(with_names != without, axis=-1)
  rows, cols = np.nonzero(changed)
  assert changed.any() and cols.max() < 120  # text only inside the big one
  assert without[60, 150].tolist() == [100, 100, 100]  # void untouched


def test_grid_size():
  panels = [Image.new('RGB', (100, 50))] * 5
  figure = layout.grid(panels, list('abcde'), columns=3, panel_width=80)
  # 3 columns of 80 + margins; 2 rows of 40 + title + margins.
  assert figure.size == (3 * 86 + 6, 2 * (40 + 12 + 6) + 6)
  with pytest.raises(ValueError, match='titles'):
    layout.grid(panels, ['a'], columns=2)


def test_figures_from_the_tiny_model(coco_sample, tiny_inference, tmp_path):
  image_path = sorted((coco_sample / 'images').glob('*.jpg'))[0]
  image = np.asarray(Image.open(image_path).convert('RGB'))
  paths = visualize.visualize(tiny_inference, image, str(tmp_path),
                              image_path.stem)
  assert [p.split('/')[-1] for p in paths] == [
      f'{image_path.stem}_fig5_clustering.png',
      f'{image_path.stem}_fig1_cross_attention.png']
  outputs = tiny_inference.model_outputs(
      tiny_inference.preprocess(tf.constant(image))[0])
  num_layers = len(outputs[common.AUX_OUTPUTS]) + 1
  assert num_layers == 2  # tiny config: 2 transformer layers
  fig5, fig1 = (Image.open(p) for p in paths)
  # Fig. 5: image + every layer + panoptic, 4 per row at 256 px.
  panels = num_layers + 2
  columns = min(4, panels)
  assert fig5.width == columns * 262 + 6
  assert fig5.height > (-(-panels // columns)) * 100
  # Fig. 1: image + the best kept centers (at most NUM_ATTENTION_CENTERS).
  kept = np.count_nonzero(tiny_inference.serve(
      tf.constant(image))['segment_labels'].numpy())
  assert kept > 0
  shown = min(kept, visualize.NUM_ATTENTION_CENTERS)
  assert fig1.width == (1 + shown) * 262 + 6
  assert np.asarray(fig1).std() > 10  # not a blank canvas

"""The paper's pictures of the clustering for one image (`cmt-visualize`,
whose command line is `cmt.tools.visualize`).

`visualize` writes
  O/<name>_fig5_clustering.png   Fig. 5: the clustering result of every CMT
      layer, Z = softmax_N(assignment logits) (Eq. 6), shown as argmax_N with
      one colour per cluster center (`AUX_OUTPUTS`, then the final mask
      logits), each with the reference-mask points r (Eq. 10) of the kept
      centers in their centers' colours; last, the panoptic prediction.
  O/<name>_fig1_cross_attention.png   Fig. 1: the last layer's
      memory-to-pixel attention (Eq. 3's softmax) averaged over heads
      (`CROSS_ATTENTION`) for the highest-scoring kept centers and, with the
      clustering update, below it the same centers' clustering assignment
      Z (`CLUSTER_ASSIGNMENT`, Eq. 6), each map normalised to its maximum.

A center is "kept" when post-processing (`evaluator_options`) gave it a
segment; when none is kept (an untrained model), the centers with the
highest class confidence stand in.
"""

import os
from typing import Optional, Sequence

import numpy as np

from cmt import atomic_files

# Centers shown in Fig. 1.
NUM_ATTENTION_CENTERS = 4


def nearest_upsample(label_map: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """[h, w, ...] -> [H, W, ...] nearest with aligned corners (the stride-4 /
  stride-16 grids of the model sit on pixel centres of a 4k + 1 crop)."""
  height, width = label_map.shape[:2]
  # Rounds halves up, as TensorFlow's resize does.
  rows = np.floor(np.arange(size[0]) * (height - 1) / max(size[0] - 1, 1)
                  + 0.5).astype(int)
  cols = np.floor(np.arange(size[1]) * (width - 1) / max(size[1] - 1, 1)
                  + 0.5).astype(int)
  return label_map[rows][:, cols]


def bilinear_upsample(values: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """[h, w] float -> [H, W], bilinear with aligned corners."""
  height, width = values.shape
  rows = np.arange(size[0]) * (height - 1) / max(size[0] - 1, 1)
  cols = np.arange(size[1]) * (width - 1) / max(size[1] - 1, 1)
  r0 = np.floor(rows).astype(int)
  c0 = np.floor(cols).astype(int)
  r1 = np.minimum(r0 + 1, height - 1)
  c1 = np.minimum(c0 + 1, width - 1)
  fr = (rows - r0)[:, None]
  fc = (cols - c0)[None, :]
  top = values[r0][:, c0] * (1 - fc) + values[r0][:, c1] * fc
  bottom = values[r1][:, c0] * (1 - fc) + values[r1][:, c1] * fc
  return top * (1 - fr) + bottom * fr


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
  shifted = logits - logits.max(axis=axis, keepdims=True)
  exp = np.exp(shifted)
  return exp / exp.sum(axis=axis, keepdims=True)


def clustering_map(mask_logits: np.ndarray, crop: Sequence[int],
                   valid: Sequence[int]) -> np.ndarray:
  """Z = softmax_N(logits) [h, w, N] -> its argmax, the center of each
  pixel, at crop resolution and cut to the valid (unpadded) region."""
  assignment = softmax(mask_logits).argmax(-1)
  return nearest_upsample(assignment, crop)[:valid[0], :valid[1]]


def points_in_pixels(points: np.ndarray, crop: Sequence[int]) -> np.ndarray:
  """Reference points (h, w) in [0, 1] of the crop -> (row, col) pixels."""
  scale = np.array([crop[0] - 1, crop[1] - 1], np.float64)
  return np.asarray(points, np.float64) * scale


def kept_centers(segment_labels: np.ndarray, class_logits: np.ndarray,
                 segment_scores: np.ndarray, count: int) -> np.ndarray:
  """Centers that produced a segment, best score first; else (none kept)
  the `count` with the highest non-void class confidence."""
  kept = np.nonzero(segment_labels)[0]
  if kept.size:
    return kept[np.argsort(-segment_scores[kept], kind='stable')]
  confidence = softmax(class_logits)[:, 1:].max(-1)
  return np.argsort(-confidence, kind='stable')[:count]


def figure5(image: np.ndarray, layer_logits: Sequence[np.ndarray],
            layer_points: Sequence[Optional[np.ndarray]],
            panoptic_overlay, kept: np.ndarray, crop: Sequence[int]):
  """Fig. 5 panels: image + each layer's clustering (+ reference points)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from cmt.vis import colors as colors_lib  # pylint: disable=g-import-not-at-top
  from cmt.vis import drawing  # pylint: disable=g-import-not-at-top
  from cmt.vis import layout  # pylint: disable=g-import-not-at-top
  valid = image.shape[:2]
  num_centers = layer_logits[0].shape[-1]
  center_colors = colors_lib.distinct_colors(num_centers)
  panels, titles = [Image.fromarray(image)], ['image']
  for index, (logits, points) in enumerate(zip(layer_logits, layer_points)):
    assignment = clustering_map(logits, crop, valid)
    panel = Image.fromarray(drawing.blend(
        image, center_colors[assignment], 0.65, np.ones(valid, bool)))
    if points is not None:
      for center in kept:
        pixels = points_in_pixels(points[center], crop)
        drawing.draw_points(panel, pixels, [center_colors[center]] *
                            len(pixels), radius=max(2, min(valid) // 80))
    last = index == len(layer_logits) - 1
    titles.append('final output' if last else f'layer {index + 1}')
    panels.append(panel)
  panels.append(panoptic_overlay)
  titles.append('panoptic')
  return layout.grid(panels, titles, columns=min(4, len(panels)))


def heat_panel(image: np.ndarray, values: np.ndarray, crop: Sequence[int]):
  """A map [h, w] over the crop as a heat overlay on `image` (the valid
  region), normalised to its maximum."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from cmt.vis import colors as colors_lib  # pylint: disable=g-import-not-at-top
  from cmt.vis import drawing  # pylint: disable=g-import-not-at-top
  valid = image.shape[:2]
  heat = bilinear_upsample(values, crop)[:valid[0], :valid[1]]
  heat = heat / max(float(heat.max()), 1e-12)
  return Image.fromarray(drawing.blend(
      image, colors_lib.heat_colors(heat), 0.7, np.ones(valid, bool)))


def figure1(image: np.ndarray, attention: np.ndarray, centers: np.ndarray,
            titles: Sequence[str], crop: Sequence[int],
            assignment: Optional[np.ndarray] = None):
  """Fig. 1 panels: head-averaged cross-attention [N, h, w] of `centers`;
  below, with the clustering update, their assignment Z^T [N, h, w]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from cmt.vis import layout  # pylint: disable=g-import-not-at-top
  panels = [Image.fromarray(image)] + [
      heat_panel(image, attention[c], crop) for c in centers]
  names = ['image', *titles]
  if assignment is not None:
    panels += [Image.fromarray(image)] + [
        heat_panel(image, assignment[c], crop) for c in centers]
    names += ['clustering Z', *[f'Z, center {c}' for c in centers]]
  return layout.grid(panels, names, columns=len(centers) + 1)


def visualize(inference, image: np.ndarray, output_dir: str,
              name: str) -> list[str]:
  """Both figures for one uint8 image; returns the written paths."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cmt import common  # pylint: disable=g-import-not-at-top
  from cmt.model import post_processing  # pylint: disable=g-import-not-at-top
  from cmt.vis import drawing  # pylint: disable=g-import-not-at-top
  info = inference.dataset_info
  batch, resized = inference.preprocess(tf.constant(image, tf.uint8))
  crop = batch.shape[1:3]
  outputs = inference.model_outputs(batch)
  predictions = post_processing.post_process(
      outputs, inference.evaluator_options, info, crop)
  valid = resized.numpy().tolist()
  shown = batch[0, :valid[0], :valid[1]].numpy().round().astype(np.uint8)
  labels = predictions[common.PRED_SEGMENT_LABELS][0].numpy()
  scores = predictions[common.PRED_SEGMENT_SCORES][0].numpy()
  class_logits = outputs[common.CLASS_LOGITS][0].numpy()
  kept = kept_centers(labels, class_logits, scores, NUM_ATTENTION_CENTERS)

  aux = outputs[common.AUX_OUTPUTS]
  layer_logits = [a[common.MASK_LOGITS][0].numpy() for a in aux]
  layer_points = [a[common.REFERENCE_POINTS][0].numpy()
                  if common.REFERENCE_POINTS in a else None for a in aux]
  layer_logits.append(outputs[common.MASK_LOGITS][0].numpy())
  final_points = outputs.get(common.REFERENCE_POINTS)
  layer_points.append(None if final_points is None
                      else final_points[0].numpy())
  panoptic = predictions[common.PRED_PANOPTIC][0, :valid[0],
                                                :valid[1]].numpy()
  overlay = drawing.panoptic_overlay(shown, panoptic,
                                     np.array(info.class_colors, np.uint8),
                                     info.class_names, info.label_divisor)
  fig5 = figure5(shown, layer_logits, layer_points, overlay, kept, crop)
  attention = outputs[common.CROSS_ATTENTION][0].numpy()
  centers = kept[:NUM_ATTENTION_CENTERS]
  class_pred = class_logits[:, 1:].argmax(-1) + 1
  titles = [f'center {c}: {info.class_names[class_pred[c]]}'
            for c in centers]
  assignment = outputs.get(common.CLUSTER_ASSIGNMENT)
  fig1 = figure1(shown, attention, centers, titles, crop,
                 None if assignment is None else assignment[0].numpy())
  paths = figure_paths(output_dir, name)
  for figure, path in zip((fig5, fig1), paths):
    with atomic_files.open_atomic(path, 'wb') as f:
      figure.save(f, format='PNG', optimize=True)
  return paths


def figure_paths(output_dir: str, name: str) -> list[str]:
  """The Fig. 5 and Fig. 1 files written for image `name`."""
  return [os.path.join(output_dir, f'{name}_{suffix}.png')
          for suffix in ('fig5_clustering', 'fig1_cross_attention')]

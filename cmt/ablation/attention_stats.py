"""Fig. 1 measured: how much of a cluster center's attention, and of its
clustering assignment, falls on its object, and how evenly it covers it.

Distributions. For every cluster center n of a held-out image, each map
below is made a distribution over the image's pixels (sum 1):

  attention   A_n: the last layer's cross-attention (`CROSS_ATTENTION`): the
              center-to-pixel weights of Eq. 3's softmax, averaged over
              heads (stride 16);
  assignment  Z_n: the last layer's clustering assignment, row n of Z^T
              (`CLUSTER_ASSIGNMENT`, Eq. 6; rows with the clustering update
              only; stride 16);
  mask        Y_n: the final pixel-to-center assignment, softmax_N of the
              mask logits (Eq. 4; stride 4): what a perfect segmentation
              would give.

A grid value is spread evenly over the image pixels nearest to its grid
point (aligned corners, as the model resizes), so a map shows no detail finer
than its grid; the map is then divided by its sum over the image.

Matching. For a ground-truth segment M, the matched center is the one whose
predicted mask (argmax_N of the final mask logits, as `cmt-visualize` draws
it) has the highest IoU with M; a segment no predicted mask touches (IoU 0)
has no matched center and is only counted.

Statistics of a distribution P on M, per matched segment:

  inside(M)   = sum over p in M of P(p), the share that falls on the object;
  coverage(M) = H(P_M) / log |M|, P_M the restriction of P to M renormalised
                to sum 1, H its entropy (nats): 1 when P is uniform over the
                object (Fig. 1, bottom row), 0 when it sits on one pixel; 1
                for |M| = 1; undefined (NaN, left out of means) when
                inside(M) = 0;
  spot(M)     = the coverage a map on ONE stride-16 grid cell would get,
                log |M n cell| / log |M| for the cell holding most of M: the
                floor "a few spots" reaches at that resolution (the same for
                every row).

Reference masks (Eq. 10): the matched center's M points r^c, rounded to the
nearest pixel; hit(M) = the share of them inside M, against chance(M) =
|M| / (H W), the share of a point placed uniformly at random.
"""

import math
from typing import Iterator, Optional, Sequence

import numpy as np

from cmt import visualize

KINDS = ('things', 'stuff')
# The maps of the module docstring, in the order of the report.
MAPS = ('attention', 'assignment', 'mask')
STATISTICS = tuple(f'{m}_{s}' for m in MAPS for s in ('inside', 'coverage')
                   ) + ('spot', 'iou', 'reference_hit', 'reference_chance')


def grid_cells(grid: Sequence[int], crop: Sequence[int],
               valid: Sequence[int]) -> np.ndarray:
  """[H, W] index (row-major) of the grid point nearest to each pixel of the
  valid region of a crop (aligned corners)."""
  index = np.arange(grid[0] * grid[1]).reshape(grid)
  return visualize.nearest_upsample(index, crop)[:valid[0], :valid[1]]


def pixel_distribution(values: np.ndarray, cells: np.ndarray) -> np.ndarray:
  """One map [h, w] -> [H, W] summing to 1: each grid value spread evenly
  over the pixels of its cell (`grid_cells`)."""
  counts = np.bincount(cells.ravel(), minlength=values.size)
  per_pixel = np.maximum(values.ravel(), 0) / np.maximum(counts, 1)
  spread = per_pixel[cells]
  total = float(spread.sum())
  return spread / total if total > 0 else spread


def inside_share(distribution: np.ndarray, mask: np.ndarray) -> float:
  return float(distribution[mask].sum())


def coverage(distribution: np.ndarray, mask: np.ndarray) -> float:
  """H(P restricted to M, renormalised) / log |M| (module docstring)."""
  inside = distribution[mask]
  total = float(inside.sum())
  if total <= 0:
    return math.nan
  if inside.size == 1:
    return 1.0
  p = inside[inside > 0] / total
  return float(-np.sum(p * np.log(p)) / math.log(inside.size))


def spot_coverage(mask: np.ndarray, cells: np.ndarray) -> float:
  """Coverage of a map on the single grid cell that holds most of M."""
  area = int(mask.sum())
  if area <= 1:
    return 1.0
  most = int(np.bincount(cells[mask]).max())
  return math.log(most) / math.log(area)


def reference_hits(points: np.ndarray, crop: Sequence[int],
                   mask: np.ndarray) -> float:
  """Share of [M, 2] reference points ((h, w) in [0, 1] of the crop) that
  fall inside `mask` [H, W] (nearest pixel; outside the image: a miss)."""
  pixels = np.rint(visualize.points_in_pixels(points, crop)).astype(int)
  rows, cols = pixels[:, 0], pixels[:, 1]
  valid = ((rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) &
           (cols < mask.shape[1]))
  hits = mask[rows[valid], cols[valid]]
  return float(hits.sum()) / len(points)


def matched_centers(mask_logits: np.ndarray, crop: Sequence[int],
                    masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """([K] center, [K] IoU): for each mask [K, H, W], the center whose
  argmax mask has the highest IoU with it."""
  assignment = visualize.clustering_map(mask_logits, crop, masks.shape[1:])
  one_hot = assignment[None] == np.arange(mask_logits.shape[-1])[:, None,
                                                                 None]
  inter = np.einsum('khw,nhw->kn', masks, one_hot, dtype=np.int64)
  union = masks.sum((1, 2))[:, None] + one_hot.sum((1, 2))[None] - inter
  iou = inter / np.maximum(union, 1)
  best = np.argmax(iou, axis=1)
  return best, iou[np.arange(len(best)), best]


def center_maps(outputs: dict) -> dict:
  """{map name: [N, h, w]} of one image's numpy model outputs (batch
  removed): the MAPS present."""
  maps = {'attention': outputs['attention'],
          'mask': np.moveaxis(visualize.softmax(outputs['mask_logits']), -1,
                              0)}
  if outputs.get('assignment') is not None:
    maps['assignment'] = outputs['assignment']
  return maps


def segment_statistics(maps: dict, mask_logits: np.ndarray,
                       points: Optional[np.ndarray], ids: np.ndarray,
                       segment_ids: Sequence[int], crop: Sequence[int]
                       ) -> tuple[list[dict], np.ndarray]:
  """(one dict of STATISTICS per matched segment, the matched center of
  every segment or -1) of one image; `maps` from `center_maps`."""
  if not len(segment_ids):
    return [], np.zeros([0], int)
  valid = ids.shape
  masks = np.stack([ids == i for i in segment_ids])
  centers, ious = matched_centers(mask_logits, crop, masks)
  cells = {name: grid_cells(m.shape[1:], crop, valid)
           for name, m in maps.items()}
  coarse = cells['attention']
  rows = []
  for center, iou, mask in zip(centers, ious, masks):
    if iou <= 0:
      continue
    row = {'iou': float(iou), 'spot': spot_coverage(mask, coarse)}
    for name, values in maps.items():
      distribution = pixel_distribution(values[center], cells[name])
      row[f'{name}_inside'] = inside_share(distribution, mask)
      row[f'{name}_coverage'] = coverage(distribution, mask)
    if points is not None:
      row['reference_hit'] = reference_hits(points[center], crop, mask)
      row['reference_chance'] = float(mask.mean())
    rows.append(row)
  return rows, np.where(ious > 0, centers, -1)


def measure(inference, examples: Iterator, figure_image: int = 0
            ) -> tuple[dict, dict]:
  """(statistics, figure material) over `examples` (image uint8 [H, W, 3]
  at the eval crop, ids [H, W], {kind: segment ids}) under the model of
  `inference` (`cmt.export.PanopticInference`).

  statistics: {kind: {statistic: [value per matched segment]}, 'unmatched':
  {kind: count}}. Figure material (`cmt.ablation.figure`): image
  `figure_image`'s pixels, segment ids, the matched centers of its segments
  and their maps."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cmt import common  # pylint: disable=g-import-not-at-top

  @tf.function
  def forward(image):
    batch, resized = inference.preprocess(image)
    return inference.model_outputs(batch), tf.shape(batch)[1:3], resized

  measured = {kind: {name: [] for name in STATISTICS} for kind in KINDS}
  measured['unmatched'] = {kind: 0 for kind in KINDS}
  figure = {}
  for index, (image, ids, segments) in enumerate(examples):
    outputs, crop, resized = forward(tf.constant(image, tf.uint8))
    crop = crop.numpy().tolist()
    if resized.numpy().tolist() != list(ids.shape):
      raise ValueError(f'held-out image {index}: the eval crop resizes it '
                       f'from {list(ids.shape)} to {resized.numpy().tolist()}'
                       '; the statistics need images at the eval size')
    pick = lambda key: (outputs[key][0].numpy() if key in outputs else None)
    logits = pick(common.MASK_LOGITS)
    maps = center_maps({'attention': pick(common.CROSS_ATTENTION),
                        'assignment': pick(common.CLUSTER_ASSIGNMENT),
                        'mask_logits': logits})
    points = pick(common.REFERENCE_POINTS)
    for kind in KINDS:
      rows, centers = segment_statistics(maps, logits, points, ids,
                                         segments[kind], crop)
      measured['unmatched'][kind] += int(np.sum(centers < 0))
      for row in rows:
        for name, value in row.items():
          measured[kind][name].append(round(value, 6))
      if index == figure_image:
        figure[kind] = {'segments': list(segments[kind]),
                        'centers': centers.tolist()}
    if index == figure_image:
      figure.update(image=image, ids=ids, crop=crop,
                    **{f'map_{k}': v for k, v in maps.items()})
  return measured, figure


def mean_of(values: Sequence[float]) -> float:
  """Mean over the defined (non-NaN) values; NaN when there are none."""
  values = np.asarray(values, np.float64)
  values = values[~np.isnan(values)]
  return float(values.mean()) if values.size else math.nan


def run_means(measured: dict) -> dict:
  """{kind: {statistic: mean over that run's matched segments}} plus the
  segment counts: what the report averages over seeds."""
  means = {}
  for kind in KINDS:
    stats = measured[kind]
    means[kind] = {name: mean_of(stats.get(name, [])) for name in STATISTICS}
    means[kind]['segments'] = len(stats.get('iou', []))
    means[kind]['unmatched'] = measured.get('unmatched', {}).get(kind, 0)
  return means

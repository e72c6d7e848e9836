"""Panoptic quality (Kirillov et al., CVPR 2019) exactly as COCO computes it.

The rules are those of COCO's panopticapi (`pq_compute_single_core`):

* Per image, a predicted segment p and a ground-truth segment g match when
  they have the same category, g is not crowd, and

      IoU(p, g) = |p n g| / (|p| + |g| - |p n g| - |p n void|) > 0.5,

  i.e. predicted pixels on ground-truth void are left out of the union.
  IoU exactly 0.5 is not a match; with IoU > 0.5 a segment matches at most
  one other, so no assignment problem arises.
* Every unmatched non-crowd ground-truth segment is a false negative.
* An unmatched prediction is a false positive unless more than half of it
  lies on void plus the crowd region of its own category (panopticapi keeps
  ONE crowd segment per category and image: the last one listed).
* Per category c:  PQ_c = sum IoU / (TP + FP/2 + FN/2),
  SQ_c = sum IoU / TP,  RQ_c = TP / (TP + FP/2 + FN/2).
  Categories with TP + FP + FN = 0 are skipped; All / Things / Stuff are
  plain means over the remaining categories, n counts them.

`match_segments` does one image, vectorised over the segment pairs with one
joint histogram; `PQAccumulator` streams over a dataset and merges (per
replica, per process). Categories are contiguous class ids 1..C (0 = void).
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np

from cmt.data import dataset_info as dataset_info_lib


@dataclasses.dataclass(frozen=True)
class SegmentTable:
  """The segments of one panoptic map, one row per segment.

  ids: [S] int64 segment ids as they appear in the id map (never 0 = void).
  classes: [S] int64 contiguous class ids 1..C.
  areas: [S] int64 pixel counts (ground truth: panopticapi takes them from
    the JSON; predictions: always counted on the map).
  is_crowd: [S] bool (always False for predictions).
  """
  ids: np.ndarray
  classes: np.ndarray
  areas: np.ndarray
  is_crowd: np.ndarray

  def __post_init__(self):
    sizes = {len(self.ids), len(self.classes), len(self.areas),
             len(self.is_crowd)}
    if len(sizes) != 1:
      raise ValueError(f'segment table columns differ in length: {sizes}')


@dataclasses.dataclass
class ImageStats:
  """Per-category counts of one image (or a sum of images); index = class."""
  tp: np.ndarray
  fp: np.ndarray
  fn: np.ndarray
  iou: np.ndarray


# Ids below this are looked up in a dense table (COCO PNG ids are 24-bit).
_DENSE_IDS = 1 << 24
# The dense table, kept per process and grown on demand; all zeros between
# calls.
_DENSE_TABLE = np.zeros(0, np.int32)


def _rows_of(ids_map: np.ndarray, table_ids: np.ndarray, first_row: int,
             void_row: int, unlisted_row: int) -> np.ndarray:
  """Per pixel: `first_row` + the row of its id in `table_ids` (the first
  one when an id is listed twice); `void_row` for id 0; `unlisted_row` for
  an id not in the table.

  A dense id -> row table makes this one gather and one add per pixel (a
  sort or a search per pixel costs several times more). The table holds
  row - unlisted_row, so that its zeros mean "not listed".
  """
  global _DENSE_TABLE
  count = len(table_ids)
  top = max(int(ids_map.max(initial=0)),
            int(table_ids.max(initial=0))) + 1
  if top <= _DENSE_IDS:
    if len(_DENSE_TABLE) < top:
      _DENSE_TABLE = np.zeros(top, np.int32)
    # Reversed so that the first of repeated ids wins; void wins over all.
    _DENSE_TABLE[table_ids[::-1]] = (
        np.arange(count, dtype=np.int32)[::-1] + (first_row - unlisted_row))
    _DENSE_TABLE[0] = void_row - unlisted_row
    try:
      rows = _DENSE_TABLE[ids_map]
    finally:
      _DENSE_TABLE[table_ids] = 0
      _DENSE_TABLE[0] = 0
    rows += np.int32(unlisted_row)
    return rows
  order = np.argsort(table_ids, kind='stable')
  sorted_ids = table_ids[order]
  position = np.minimum(np.searchsorted(sorted_ids, ids_map),
                        max(count - 1, 0))
  found = (sorted_ids[position] == ids_map) if count else np.zeros(
      ids_map.shape, bool)
  rows = np.where(found, order[position] + first_row if count else 0,
                  unlisted_row)
  return np.where(ids_map == 0, void_row, rows).astype(np.int32)


def _as_int32(ids: np.ndarray) -> np.ndarray:
  ids = np.asarray(ids).reshape(-1)
  if ids.dtype == np.int32:
    return ids
  if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
    raise ValueError('segment ids must lie in 0..2^31-1')
  return ids.astype(np.int32)


def match_segments(gt_ids: np.ndarray, gt: SegmentTable,
                   pred_ids: np.ndarray, pred: SegmentTable,
                   num_classes: int) -> ImageStats:
  """TP / FP / FN / sum-IoU per category for one image (module docstring).

  Args:
    gt_ids, pred_ids: [H, W] integer segment-id maps, 0 = void.
    gt, pred: the segments of each map. Ground-truth pixels whose id is
      neither 0 nor in `gt` are neither void nor any segment (as in
      panopticapi); every nonzero predicted id must be in `pred`.
    num_classes: C; the returned arrays have C + 1 entries (index 0 unused).
  """
  if gt_ids.shape != pred_ids.shape:
    raise ValueError(f'ground truth {gt_ids.shape} and prediction '
                     f'{pred_ids.shape} differ in size')
  # 32-bit ids (COCO's are 24-bit) make the per-pixel work ~3x faster.
  gt_ids, pred_ids = _as_int32(gt_ids), _as_int32(pred_ids)
  num_gt, num_pred = len(gt.ids), len(pred.ids)
  # Rows: 0 = gt void, 1 = gt id listed nowhere, 2.. = gt segments.
  gt_row = _rows_of(gt_ids, gt.ids, first_row=2, void_row=0, unlisted_row=1)
  # Columns: 0 = predicted void, 1.. = predicted segments; -1 not listed.
  pred_col = _rows_of(pred_ids, pred.ids, first_row=1, void_row=0,
                      unlisted_row=-1)
  if pred_col.min(initial=0) < 0:
    unlisted = pred_col < 0
    raise ValueError(f'predicted ids {np.unique(pred_ids[unlisted]).tolist()} '
                     'are not in the prediction segment table')
  histogram = np.bincount(gt_row * np.int32(num_pred + 1) + pred_col,
                          minlength=(num_gt + 2) * (num_pred + 1))
  histogram = histogram.reshape(num_gt + 2, num_pred + 1)
  intersection = histogram[2:, 1:]                      # [G, P]
  on_void = histogram[0, 1:]                            # [P]

  gt_classes = gt.classes.astype(np.int64)
  pred_classes = pred.classes.astype(np.int64)
  union = (pred.areas[None, :] + gt.areas[:, None] - intersection
           - on_void[None, :])
  iou = np.divide(intersection, union, out=np.zeros(intersection.shape),
                  where=intersection > 0)
  candidate = ((gt_classes[:, None] == pred_classes[None, :])
               & ~gt.is_crowd[:, None])
  matched = candidate & (iou > 0.5)
  gt_matched = matched.any(axis=1)
  pred_matched = matched.any(axis=0)

  size = num_classes + 1
  gt_rows, pred_cols = np.nonzero(matched)
  tp = np.bincount(gt_classes[gt_rows], minlength=size)
  iou_sum = np.bincount(gt_classes[gt_rows], weights=iou[gt_rows, pred_cols],
                        minlength=size)
  fn = np.bincount(gt_classes[~gt_matched & ~gt.is_crowd], minlength=size)

  # Crowd region of each category: the last crowd segment listed.
  crowd_row = np.full(size, -1, np.int64)
  crowd_rows = np.flatnonzero(gt.is_crowd)
  crowd_row[gt_classes[crowd_rows]] = crowd_rows   # later rows overwrite
  pred_crowd_row = crowd_row[pred_classes]
  with_crowd = np.flatnonzero(pred_crowd_row >= 0)
  on_crowd = np.zeros(num_pred, np.int64)
  on_crowd[with_crowd] = intersection[pred_crowd_row[with_crowd], with_crowd]
  ignored = (on_void + on_crowd) / np.maximum(pred.areas, 1) > 0.5
  fp = np.bincount(pred_classes[~pred_matched & ~ignored], minlength=size)
  return ImageStats(tp=tp, fp=fp, fn=fn, iou=iou_sum.astype(np.float64))


def segments_of_label_map(panoptic: np.ndarray, label_divisor: int,
                          num_classes: int,
                          crowd: Optional[np.ndarray] = None,
                          what: str = 'prediction'
                          ) -> tuple[np.ndarray, SegmentTable]:
  """A `semantic * divisor + instance` map -> (id map, segment table).

  Pixels of class 0 are void. With `crowd` ([H, W], nonzero on crowd), crowd
  pixels form their own segments even when they share a label value with
  non-crowd pixels, so any crowd encoding of the input pipeline works.
  """
  panoptic = np.asarray(panoptic).astype(np.int64)
  semantic = panoptic // label_divisor
  if panoptic.min(initial=0) < 0 or semantic.max(initial=0) > num_classes:
    bad = panoptic[(panoptic < 0) | (semantic > num_classes)][0]
    raise ValueError(f'{what}: label {bad} is not semantic * {label_divisor} '
                     f'+ instance with semantic in 0..{num_classes}')
  keys = panoptic * 2
  if crowd is not None:
    keys = keys + (np.asarray(crowd) > 0)
  keys = np.where(semantic == 0, 0, keys)
  ids, inverse, areas = np.unique(keys.reshape(-1), return_inverse=True,
                                  return_counts=True)
  id_map = (inverse.reshape(panoptic.shape) + 1).astype(np.int32)
  keep = ids != 0
  id_map = np.where(keys == 0, 0, id_map)
  rows = np.flatnonzero(keep) + 1
  table = SegmentTable(ids=rows.astype(np.int64),
                       classes=(ids[keep] // 2) // label_divisor,
                       areas=areas[keep].astype(np.int64),
                       is_crowd=(ids[keep] % 2).astype(bool))
  return id_map, table


def _empty(size: int) -> ImageStats:
  return ImageStats(tp=np.zeros(size, np.int64), fp=np.zeros(size, np.int64),
                    fn=np.zeros(size, np.int64), iou=np.zeros(size, np.float64))


class PQAccumulator:
  """Streams panoptic-quality counts over a dataset; accumulators merge."""

  def __init__(self, dataset_info: dataset_info_lib.DatasetInfo):
    self.dataset_info = dataset_info
    self.stats = _empty(dataset_info.num_classes + 1)
    self.num_images = 0

  def reset(self):
    self.stats = _empty(self.dataset_info.num_classes + 1)
    self.num_images = 0

  def add(self, image_stats: ImageStats):
    for field in ('tp', 'fp', 'fn', 'iou'):
      setattr(self.stats, field,
              getattr(self.stats, field) + getattr(image_stats, field))
    self.num_images += 1

  def update(self, gt_panoptic: np.ndarray, pred_panoptic: np.ndarray,
             gt_crowd: Optional[np.ndarray] = None):
    """Adds one image given as `semantic * divisor + instance` maps."""
    info = self.dataset_info
    gt_ids, gt = segments_of_label_map(
        gt_panoptic, info.label_divisor, info.num_classes, gt_crowd,
        what='ground truth')
    pred_ids, pred = segments_of_label_map(
        pred_panoptic, info.label_divisor, info.num_classes)
    self.add(match_segments(gt_ids, gt, pred_ids, pred, info.num_classes))

  def merge(self, other: 'PQAccumulator'):
    if other.dataset_info.num_classes != self.dataset_info.num_classes:
      raise ValueError('cannot merge accumulators of different datasets: '
                       f'{self.dataset_info.name} and '
                       f'{other.dataset_info.name}')
    for field in ('tp', 'fp', 'fn', 'iou'):
      setattr(self.stats, field,
              getattr(self.stats, field) + getattr(other.stats, field))
    self.num_images += other.num_images

  def result(self) -> dict:
    """PQ/SQ/RQ in percent for All/Things/Stuff with n, and per class.

    Keys: pq, sq, rq, n, pq_things, ..., n_things, pq_stuff, ..., n_stuff,
    and per_class: {class name: {pq, sq, rq, tp, fp, fn}} for every class
    with TP + FP + FN > 0 (the classes the averages use). An empty group
    reports 0 with n = 0 (panopticapi divides by zero there).
    """
    return pq_result(self.stats, self.dataset_info)


def pq_result(stats: ImageStats,
              dataset_info: dataset_info_lib.DatasetInfo) -> dict:
  """Turns summed counts into the metrics dict of `PQAccumulator.result`."""
  tp, fp, fn, iou = stats.tp, stats.fp, stats.fn, stats.iou
  denominator = tp + 0.5 * fp + 0.5 * fn
  present = denominator > 0
  present[0] = False  # void is never a category
  pq = np.divide(iou, denominator, out=np.zeros(len(iou)), where=present)
  sq = np.divide(iou, tp, out=np.zeros(len(iou)), where=tp > 0)
  rq = np.divide(tp, denominator, out=np.zeros(len(iou)), where=present)
  is_thing = np.asarray(dataset_info.thing_mask)
  metrics = {}
  for suffix, group in (('', present), ('_things', present & is_thing),
                        ('_stuff', present & ~is_thing)):
    n = int(group.sum())
    for name, values in (('pq', pq), ('sq', sq), ('rq', rq)):
      metrics[name + suffix] = float(100 * values[group].mean()) if n else 0.0
    metrics['n' + suffix] = n
  names = dataset_info.class_names
  metrics['per_class'] = {
      names[c]: {'pq': float(100 * pq[c]), 'sq': float(100 * sq[c]),
                 'rq': float(100 * rq[c]), 'tp': int(tp[c]), 'fp': int(fp[c]),
                 'fn': int(fn[c])}
      for c in np.flatnonzero(present)}
  return metrics


def sum_stats(all_stats: Sequence[ImageStats], size: int) -> ImageStats:
  """The elementwise sum of per-image (or per-worker) counts."""
  total = _empty(size)
  for stats in all_stats:
    total.tp += stats.tp
    total.fp += stats.fp
    total.fn += stats.fn
    total.iou += stats.iou
  return total

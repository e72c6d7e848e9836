"""Panoptic quality: one hand-built test per COCO rule, and a naive oracle.

Maps are tiny label maps `semantic * 256 + instance` over a toy dataset:
classes 1 'a' and 2 'b' are things, 3 's' is stuff.
"""

import dataclasses

import numpy as np
import pytest

from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import panoptic_quality

INFO = dataset_info_lib.from_categories('toy', [
    {'id': 1, 'name': 'a', 'isthing': 1},
    {'id': 2, 'name': 'b', 'isthing': 1},
    {'id': 3, 'name': 's', 'isthing': 0}])
A1, A2, B1, S = 257, 258, 513, 768   # a#1, a#2, b#1, stuff s


def evaluate(gt, pred, crowd=None):
  accumulator = panoptic_quality.PQAccumulator(INFO)
  accumulator.update(np.array(gt), np.array(pred),
                     None if crowd is None else np.array(crowd))
  return accumulator


def counts(accumulator, class_id):
  stats = accumulator.stats
  return (int(stats.tp[class_id]), int(stats.fp[class_id]),
          int(stats.fn[class_id]), float(stats.iou[class_id]))


def test_identical_maps_give_100():
  gt = [[A1, A1, S, S], [B1, B1, S, S]]
  result = evaluate(gt, gt).result()
  assert result['pq'] == result['sq'] == result['rq'] == 100
  assert (result['n'], result['n_things'], result['n_stuff']) == (3, 2, 1)


def test_iou_exactly_one_half_is_not_a_match():
  gt = [[A1] * 8]
  pred = [[A1] * 4 + [0] * 4]          # IoU = 4 / 8
  assert counts(evaluate(gt, pred), 1) == (0, 1, 1, 0.0)


def test_iou_just_above_one_half_is_a_match():
  gt = [[A1] * 8]
  pred = [[A1] * 5 + [0] * 3]          # IoU = 5 / 8
  assert counts(evaluate(gt, pred), 1) == (1, 0, 0, 5 / 8)


def test_void_is_excluded_from_the_union():
  # The prediction covers the 4 ground-truth pixels and 4 void pixels:
  # IoU = 4 / (8 + 4 - 4 - 4) = 1, not 4 / 8.
  gt = [[A1] * 4 + [0] * 4]
  pred = [[A1] * 8]
  assert counts(evaluate(gt, pred), 1) == (1, 0, 0, 1.0)


def test_crowd_is_never_matched_nor_a_false_negative():
  gt = [[A1] * 6 + [S] * 2]
  crowd = [[1] * 6 + [0] * 2]
  pred = [[A1] * 6 + [S] * 2]          # exactly on the crowd region
  accumulator = evaluate(gt, pred, crowd)
  assert counts(accumulator, 1) == (0, 0, 0, 0.0)
  result = accumulator.result()
  assert result['n_things'] == 0 and result['n'] == 1   # class a skipped
  assert 'a' not in result['per_class']


@pytest.mark.parametrize('on_void, is_false_positive', [(4, False),
                                                        (3, True)])
def test_prediction_more_than_half_on_void_is_not_a_false_positive(
    on_void, is_false_positive):
  gt = [[0] * on_void + [S] * (8 - on_void)]
  pred = [[B1] * 6 + [S] * 2]          # b: 6 pixels, on_void of them void
  tp, fp, fn, _ = counts(evaluate(gt, pred), 2)
  assert (tp, fp, fn) == (0, int(is_false_positive), 0)


@pytest.mark.parametrize('crowd_class, is_false_positive', [(1, False),
                                                            (2, True)])
def test_same_class_crowd_counts_with_void(crowd_class, is_false_positive):
  # The predicted a segment (6 px): 2 on void, 2 on crowd, 2 on stuff.
  crowd_label = crowd_class * 256
  gt = [[0, 0, crowd_label, crowd_label, S, S, S, S]]
  crowd = [[0, 0, 1, 1, 0, 0, 0, 0]]
  pred = [[A1] * 6 + [S] * 2]
  tp, fp, fn, _ = counts(evaluate(gt, pred, crowd), 1)
  assert (tp, fp, fn) == (0, int(is_false_positive), 0)


def test_class_mismatch_is_a_false_negative_and_a_false_positive():
  gt = [[A1] * 4]
  pred = [[B1] * 4]
  accumulator = evaluate(gt, pred)
  assert counts(accumulator, 1) == (0, 0, 1, 0.0)
  assert counts(accumulator, 2) == (0, 1, 0, 0.0)
  result = accumulator.result()
  assert result['pq'] == 0 and result['n'] == 2


def test_empty_prediction():
  gt = [[A1, A2, S, S]]
  result = evaluate(gt, [[0, 0, 0, 0]]).result()
  assert counts(evaluate(gt, [[0] * 4]), 1) == (0, 0, 2, 0.0)
  assert result['pq'] == 0 and result['n'] == 2


def test_empty_ground_truth():
  # All ground truth void: predictions lie entirely on void, nothing counts.
  accumulator = evaluate([[0] * 4], [[A1, A1, S, S]])
  result = accumulator.result()
  assert result['n'] == 0 and result['pq'] == 0
  assert not accumulator.stats.fp.any()


def test_per_class_formulas():
  # a: one match with IoU 3/4 and one missed instance -> PQ = 0.75 / 1.5.
  gt = [[A1, A1, A1, A1, A2, A2]]
  pred = [[A1, A1, A1, 0, 0, 0]]
  per_class = evaluate(gt, pred).result()['per_class']['a']
  assert per_class['pq'] == pytest.approx(50.0)
  assert per_class['sq'] == pytest.approx(75.0)
  assert per_class['rq'] == pytest.approx(100 / 1.5)
  assert (per_class['tp'], per_class['fp'], per_class['fn']) == (1, 0, 1)


def test_last_crowd_segment_of_a_category_is_the_one_used():
  # panopticapi keeps one crowd region per category: the last listed.
  gt_ids = np.array([[1, 1, 2, 2, 0, 0]])
  gt = panoptic_quality.SegmentTable(
      ids=np.array([1, 2]), classes=np.array([1, 1]),
      areas=np.array([2, 2]), is_crowd=np.array([True, True]))
  pred_ids = np.array([[7, 7, 7, 9, 9, 9]])   # 7: 2 px on crowd 1, 1 on 2
  pred = panoptic_quality.SegmentTable(
      ids=np.array([7, 9]), classes=np.array([1, 1]),
      areas=np.array([3, 3]), is_crowd=np.array([False, False]))
  stats = panoptic_quality.match_segments(gt_ids, gt, pred_ids, pred, 3)
  # 7 has 1 of 3 pixels on crowd 2 -> false positive; 9: 2 of 3 on void and
  # 1 on crowd 2 -> ignored.
  assert stats.fp[1] == 1


def test_streaming_and_merging_agree():
  rng = np.random.default_rng(1)
  images = [random_pair(rng) for _ in range(6)]
  whole = panoptic_quality.PQAccumulator(INFO)
  halves = [panoptic_quality.PQAccumulator(INFO) for _ in range(2)]
  for index, (gt, crowd, pred) in enumerate(images):
    whole.update(gt, pred, crowd)
    halves[index % 2].update(gt, pred, crowd)
  halves[0].merge(halves[1])
  merged, expected = halves[0].result(), whole.result()
  assert merged.pop('per_class').keys() == expected.pop('per_class').keys()
  assert merged == pytest.approx(expected)
  assert halves[0].num_images == 6


def random_pair(rng, size=(12, 14)):
  """Blocky random ground truth (with crowd) and a perturbed prediction."""
  labels = np.array([0, A1, A2, B1, S, 256, 2 * 256])  # 256, 512: crowd
  gt = labels[rng.integers(0, len(labels), (size[0] // 2, size[1] // 2))]
  gt = np.kron(gt, np.ones((2, 2), np.int64))
  crowd = (gt % 256 == 0) & (gt // 256 < 3) & (gt > 0)
  pred = gt.copy()
  noise = rng.random(size) < 0.3
  pred[noise] = rng.choice([0, A1, A2, B1, S, 259], noise.sum())
  return gt, crowd, pred


def naive_stats(gt, crowd, pred):
  """The rules spelled out with dicts and loops, one pair at a time."""
  keys = gt * 2 + crowd
  gt_segments = {k: (k // 2 // 256, bool(k % 2), int((keys == k).sum()))
                 for k in np.unique(keys) if k // 2 // 256 != 0}
  pred_segments = {p: (p // 256, int((pred == p).sum()))
                   for p in np.unique(pred) if p // 256 != 0}
  void = gt // 256 == 0
  tp, fp, fn, iou = {}, {}, {}, {}
  matched_gt, matched_pred = set(), set()
  for k, (g_class, is_crowd, g_area) in gt_segments.items():
    for p, (p_class, p_area) in pred_segments.items():
      if is_crowd or g_class != p_class:
        continue
      inter = int(((keys == k) & (pred == p)).sum())
      on_void = int((void & (pred == p)).sum())
      value = inter / (g_area + p_area - inter - on_void) if inter else 0
      if value > 0.5:
        tp[g_class] = tp.get(g_class, 0) + 1
        iou[g_class] = iou.get(g_class, 0) + value
        matched_gt.add(k)
        matched_pred.add(p)
  crowd_of = {}
  for k, (g_class, is_crowd, _) in gt_segments.items():
    if is_crowd:
      crowd_of[g_class] = k
    elif k not in matched_gt:
      fn[g_class] = fn.get(g_class, 0) + 1
  for p, (p_class, p_area) in pred_segments.items():
    if p in matched_pred:
      continue
    ignored = int((void & (pred == p)).sum())
    if p_class in crowd_of:
      ignored += int(((keys == crowd_of[p_class]) & (pred == p)).sum())
    if ignored / p_area <= 0.5:
      fp[p_class] = fp.get(p_class, 0) + 1
  return tp, fp, fn, iou


def test_matches_a_naive_implementation_of_the_rules():
  rng = np.random.default_rng(0)
  for _ in range(20):
    gt, crowd, pred = random_pair(rng)
    accumulator = evaluate(gt, pred, crowd)
    tp, fp, fn, iou = naive_stats(gt, crowd.astype(np.int64), pred)
    for class_id in range(1, 4):
      got = counts(accumulator, class_id)
      assert got[:3] == (tp.get(class_id, 0), fp.get(class_id, 0),
                         fn.get(class_id, 0))
      assert got[3] == pytest.approx(iou.get(class_id, 0.0))


def test_bad_label_is_reported():
  with pytest.raises(ValueError, match='prediction: label 1024'):
    evaluate([[A1]], [[1024]])


def test_ids_beyond_the_dense_table_give_the_same_counts():
  """Ids of 2^24 and more (not from a PNG) take the sorted-search path."""
  rng = np.random.default_rng(1)
  for _ in range(5):
    gt, crowd, pred = random_pair(rng)
    gt_ids, gt_table = panoptic_quality.segments_of_label_map(
        gt, 256, 3, crowd, what='ground truth')
    pred_ids, pred_table = panoptic_quality.segments_of_label_map(pred, 256, 3)
    small = panoptic_quality.match_segments(gt_ids, gt_table, pred_ids,
                                            pred_table, 3)
    shift = 1 << 25
    big = panoptic_quality.match_segments(
        np.where(gt_ids > 0, gt_ids + shift, 0),
        dataclasses.replace(gt_table, ids=gt_table.ids + shift),
        np.where(pred_ids > 0, pred_ids + shift, 0),
        dataclasses.replace(pred_table, ids=pred_table.ids + shift), 3)
    for field in ('tp', 'fp', 'fn', 'iou'):
      np.testing.assert_array_equal(getattr(small, field),
                                    getattr(big, field))

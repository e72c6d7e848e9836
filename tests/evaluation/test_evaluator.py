"""PanopticEvaluator: metrics, merging, saved predictions, metrics.json."""

import json

import numpy as np
import pytest

from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import coco_panoptic_format
from cmt.evaluation import evaluated_runs
from cmt.evaluation import evaluator as evaluator_lib
from cmt.evaluation import semantic_iou
from cmt.protos import evaluator_pb2
from cmt.tools import evaluate as evaluate_main

INFO = dataset_info_lib.from_categories('toy', [
    {'id': 1, 'name': 'a', 'isthing': 1},
    {'id': 2, 'name': 'b', 'isthing': 1},
    {'id': 7, 'name': 's', 'isthing': 0}])
A1, A2, B1, S = 257, 258, 513, 768
KEYS = {'pq', 'sq', 'rq', 'pq_things', 'sq_things', 'rq_things', 'pq_stuff',
        'sq_stuff', 'rq_stuff', 'n', 'n_things', 'n_stuff', 'ap', 'miou',
        'per_class', 'num_images'}


def ground_truth(rng):
  """[8, 10] blocky map: two a's, one b, stuff, void; block size 2."""
  blocks = rng.choice([0, A1, A2, B1, S, S], size=(4, 5))
  blocks[0, 0], blocks[1, 1], blocks[2, 2], blocks[3, 3] = A1, A2, B1, S
  return np.kron(blocks, np.ones((2, 2), np.int64))


def make(output_dir=None, **options):
  return evaluator_lib.PanopticEvaluator(
      INFO, evaluator_pb2.EvaluatorOptions(**options), output_dir)


def test_perfect_predictions():
  evaluator = make()
  rng = np.random.default_rng(0)
  for index in range(3):
    gt = ground_truth(rng)
    evaluator.update(gt, None, gt, f'{index:06d}')
  result = evaluator.result()
  assert set(result) == KEYS
  assert result['pq'] == result['ap'] == result['miou'] == 100
  assert result['num_images'] == 3


def test_ap_is_none_when_off_and_drops_with_a_missed_instance():
  gt = np.array([[A1, A1, 0, A2, A2], [A1, A1, 0, A2, A2]])
  assert make(compute_mask_ap=False).result()['ap'] is None
  evaluator = make()
  evaluator.update(gt, None, np.where(gt == A2, 0, gt), 'x')
  ap = evaluator.result()['ap']
  assert 0 < ap < 100


def test_mask_ap_uses_segment_scores():
  # A wrong a segment scored above the right one ranks a false positive
  # first; scored below, it cannot lower the precision at full recall.
  gt = np.zeros((4, 8), np.int64)
  gt[:, :4] = A1
  pred = np.zeros((4, 8), np.int64)
  pred[:, :4] = A1
  pred[:, 4:] = A2
  aps = []
  for wrong_score in (0.9, 0.1):
    evaluator = make()
    evaluator.update(gt, None, pred, 'x',
                     segment_scores={A1: 0.5, A2: wrong_score})
    aps.append(evaluator.result()['ap'])
  assert aps[1] == pytest.approx(100) and aps[0] < 99


def test_merge_equals_one_evaluator():
  rng = np.random.default_rng(3)
  pairs = []
  for _ in range(4):
    gt = ground_truth(rng)
    pred = np.where(rng.random(gt.shape) < 0.2, S, gt)
    # Distinct scores: COCO's AP breaks score ties by image order.
    scores = {label: rng.random() for label in np.unique(pred)}
    pairs.append((gt, pred, scores))
  whole, parts = make(), [make(), make()]
  for index, (gt, pred, scores) in enumerate(pairs):
    whole.update(gt, None, pred, str(index), segment_scores=scores)
    parts[index % 2].update(gt, None, pred, str(index), segment_scores=scores)
  parts[0].merge(parts[1])
  merged, expected = parts[0].result(), whole.result()
  merged_classes, expected_classes = (merged.pop('per_class'),
                                      expected.pop('per_class'))
  assert merged_classes.keys() == expected_classes.keys()
  for name, values in expected_classes.items():
    assert merged_classes[name] == pytest.approx(values)
  assert merged == pytest.approx(expected)
  assert merged['num_images'] == 4


def test_reset_forgets_images():
  evaluator = make()
  gt = ground_truth(np.random.default_rng(0))
  evaluator.update(gt, None, np.zeros_like(gt), 'x')
  evaluator.reset()
  evaluator.update(gt, None, gt, 'y')
  assert evaluator.result()['pq'] == 100


def test_mean_iou_counts_void_predictions_as_misses():
  accumulator = semantic_iou.MeanIoUAccumulator(3)
  accumulator.update(np.array([[1, 1, 3, 3, 0]]), np.array([[1, 0, 3, 3, 2]]))
  # class 1: 1 / 2; class 3: 2 / 2; class 2 never in ground truth, predicted
  # only on void (ignored): absent.
  assert accumulator.result() == pytest.approx(75.0)


def test_saved_predictions_evaluate_to_100(tmp_path, capsys):
  rng = np.random.default_rng(5)
  gt_writer_dir = tmp_path / 'gt'
  gt_writer = coco_panoptic_format.CocoPanopticWriter(
      str(tmp_path / 'gt.json'), str(gt_writer_dir), INFO)
  evaluator = make(str(tmp_path / 'eval'), save_predictions=True)
  for index in range(3):
    original = ground_truth(rng)
    name = f'{index + 1:012d}'
    gt_writer.add(name, original)
    evaluator.update(original, None, original, name)
  gt_writer.write_json()
  evaluator.result()
  saved = tmp_path / 'eval' / coco_panoptic_format.PANOPTIC_JSON
  assert json.loads(saved.read_text())['annotations'][0]['image_id'] == 1
  code = evaluate_main.main([
      f'--gt_json={tmp_path / "gt.json"}', f'--gt_folder={gt_writer_dir}',
      f'--pred_json={saved}',
      f'--pred_folder={tmp_path / "eval" / coco_panoptic_format.PNG_FOLDER}'])
  assert code == 0
  assert 'All       | 100.0  100.0  100.0' in capsys.readouterr().out


def test_save_predictions_needs_an_output_dir():
  with pytest.raises(ValueError, match='save_predictions'):
    make(save_predictions=True)


def test_metrics_json_is_what_cmt_paper_tables_reads(tmp_path):
  evaluator = make()
  gt = ground_truth(np.random.default_rng(0))
  evaluator.update(gt, None, gt, 'x')
  path = tmp_path / 'run' / 'eval' / 'metrics.json'
  evaluator.write_metrics_json(str(path), 'cmt_r50', 'configs/x.textproto',
                               1000)
  content = json.loads(path.read_text())
  assert set(content) == {'experiment_name', 'config_file', 'step', 'metrics'}
  run = evaluated_runs.load_run(path)
  assert (run.experiment_name, run.step, run.pq) == ('cmt_r50', 1000, 100.0)


def test_segment_scores_of_takes_the_best_center_per_segment():
  scores = evaluator_lib.segment_scores_of(np.array([257, 0, 768, 768]),
                                           np.array([0.9, 0.0, 0.3, 0.6]))
  assert scores == {257: pytest.approx(0.9), 768: pytest.approx(0.6)}

"""One trained checkpoint, the same COCO numbers and the same maps on every
evaluation path.

The tiny synthetic config trains until it segments the synthetic scenes
(300 steps from seed 1: stuff PQ 85, 13 of 13 stuff segments found, no
thing segment yet, even at a class threshold of 0.05; true positives are
asserted on every path), then is evaluated as
  1. in-training evaluation (`--mode=train_and_eval`) and `--mode=eval`;
  2. `save_predictions`, then `cmt-evaluate` against the COCO files;
  3. `cmt-export`, `cmt-predict`, then `cmt-evaluate`;
with the config's own post-processing (mask-wise, its thresholds and area
limits), on validation images whose original sizes differ from the 65 x 65
crop, some larger, some smaller (the evaluation resizes them to fit the crop
and the predictions back). Every path must give the same figures and,
per image, the same panoptic map up to a renumbering of segment ids.
"""

import json
import shutil

import numpy as np
from PIL import Image
import pytest
import tf_keras

from cmt.data import panoptic_label
from cmt.data import synthetic
from cmt.evaluation import offline_evaluation
from cmt.tools import build_data as build_data_tool
from cmt.tools import export as export_main
from cmt.tools import predict as predict_tool
from cmt.tools import train as train_main
from tests.trainer.conftest import DEMO_CONFIG
from tests.trainer.conftest import param_flags

VAL_SIZES = [(48, 60), (90, 120), (130, 70), (56, 100), (65, 65)]
PQ_KEYS = [f'{m}{group}' for m in ('pq', 'sq', 'rq', 'n')
           for group in ('', '_things', '_stuff')]
STEPS = 300
OVERRIDES = [
    f'trainer_options.steps_per_loop={STEPS}',
    f'trainer_options.save_summaries_steps={STEPS}',
    f'trainer_options.save_checkpoints_steps={STEPS}',
    f'trainer_options.solver_options.training_number_of_steps={STEPS}',
    'trainer_options.solver_options.base_learning_rate=0.002',
    'eval_dataset_options.batch_size=2',
    'evaluator_options.save_predictions=true',
]


def _pq_figures(metrics: dict) -> dict:
  return {**{key: metrics[key] for key in PQ_KEYS},
          'per_class': metrics['per_class']}


def _cmt_evaluate(raw, pred_json, pred_folder) -> dict:
  metrics, _ = offline_evaluation.evaluate(offline_evaluation.Sources(
      gt_json=str(raw / 'panoptic_val.json'),
      gt_folder=str(raw / 'panoptic' / 'val'),
      pred_json=str(pred_json), pred_folder=str(pred_folder)))
  return metrics


def _canonical(ids: np.ndarray) -> np.ndarray:
  """Segment ids renumbered 0, 1, ... in order of first appearance."""
  _, first, inverse = np.unique(ids.ravel(), return_index=True,
                                return_inverse=True)
  rank = np.argsort(np.argsort(first))
  return rank[inverse].reshape(ids.shape)


def _maps(pred_json, pred_folder) -> dict:
  """{image stem: (category id per pixel, void -1; canonical segments)}."""
  maps = {}
  for annotation in json.loads(pred_json.read_text())['annotations']:
    ids = panoptic_label.rgb_to_id(np.asarray(Image.open(
        pred_folder / annotation['file_name']).convert('RGB')))
    category_of = {s['id']: s['category_id']
                   for s in annotation['segments_info']}
    categories = np.vectorize(lambda i: category_of.get(i, -1))(ids)
    maps[annotation['file_name'].rsplit('.', 1)[0]] = (categories,
                                                       _canonical(ids))
  return maps


def _assert_same_maps(maps, expected, path):
  assert sorted(maps) == sorted(expected), path
  for stem, (categories, segments) in expected.items():
    assert maps[stem][0].shape == categories.shape, (path, stem)
    assert np.array_equal(maps[stem][0], categories), (path, stem)
    assert np.array_equal(maps[stem][1], segments), (path, stem)


@pytest.mark.slow
def test_every_evaluation_path_gives_the_same_numbers_and_maps(tmp_path):
  raw, records = tmp_path / 'raw', tmp_path / 'records'
  synthetic.write_dataset(str(raw), num_train=0, num_val=len(VAL_SIZES),
                          image_size=VAL_SIZES, seed=5)
  synthetic.write_dataset(str(tmp_path / 'train'), num_train=32, num_val=0,
                          image_size=(65, 65), seed=5)
  for folder, split in ((raw, 'val'), (tmp_path / 'train', 'train')):
    assert build_data_tool.main(synthetic.build_data_args(
        str(folder), split, str(records)) + ['--num_shards=1']) == 0
  params = {'TRAIN_SET': str(records / 'train-*'),
            'VAL_SET': str(records / 'val-*'),
            'CATEGORIES_JSON': str(raw / 'categories.json')}
  model_dir = tmp_path / 'run'
  flags = [f'--config_file={DEMO_CONFIG}', f'--model_dir={model_dir}',
           *param_flags(params), *[f'--override={o}' for o in OVERRIDES]]

  tf_keras.utils.set_random_seed(1)  # the same initial weights every run
  assert train_main.main(flags + ['--mode=train_and_eval']) == 0
  in_training = json.loads(
      (model_dir / 'eval' / 'metrics.json').read_text())['metrics']
  assert in_training['num_images'] == len(VAL_SIZES)
  predictions = tmp_path / 'in_training_predictions'
  shutil.copytree(model_dir / 'eval' / 'predictions', predictions)
  saved = _cmt_evaluate(raw, predictions / 'panoptic.json',
                        predictions / 'panoptic')

  assert train_main.main(flags + ['--mode=eval']) == 0
  eval_mode = json.loads(
      (model_dir / 'eval' / 'metrics.json').read_text())['metrics']
  eval_predictions = model_dir / 'eval' / 'predictions'

  saved_model = tmp_path / 'saved_model'
  model_flags = [f'--config_file={DEMO_CONFIG}',
                 f'--checkpoint_path={model_dir}', *param_flags(params),
                 *[f'--override={o}' for o in OVERRIDES]]
  assert export_main.main(model_flags + [f'--output_path={saved_model}']) == 0
  predicted = tmp_path / 'predicted'
  assert predict_tool.main([f'--model={saved_model}',
                            f'--input={raw / "images" / "val"}',
                            f'--output_dir={predicted}', '--no_progress']) == 0
  exported = _cmt_evaluate(raw, predicted / 'panoptic.json',
                           predicted / 'panoptic')

  # The model segments: true positives on every path.
  for path, metrics in (('in training', in_training), ('eval', eval_mode),
                        ('saved', saved), ('exported', exported)):
    assert sum(c['tp'] for c in metrics['per_class'].values()) > 0, (
        path, metrics['per_class'])
  expected = _pq_figures(in_training)
  assert _pq_figures(eval_mode) == expected
  assert _pq_figures(saved) == expected
  assert _pq_figures(exported) == expected
  # Per image, the same panoptic map on every path.
  maps = _maps(predictions / 'panoptic.json', predictions / 'panoptic')
  assert len(maps) == len(VAL_SIZES)
  _assert_same_maps(_maps(eval_predictions / 'panoptic.json',
                          eval_predictions / 'panoptic'), maps, 'eval')
  _assert_same_maps(_maps(predicted / 'panoptic.json',
                          predicted / 'panoptic'), maps, 'exported')

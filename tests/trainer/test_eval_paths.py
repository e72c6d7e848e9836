"""One checkpoint, the same COCO numbers on every evaluation path.

The tiny synthetic config trains a few steps, then is evaluated as
  1. in-training evaluation (`--mode=train_and_eval`) and `--mode=eval`;
  2. `save_predictions`, then `cmt-evaluate` against the COCO files;
  3. `cmt-export`, `cmt-predict`, then `cmt-evaluate`;
on validation images whose original sizes differ from the 65 x 65 crop,
some larger, some smaller (the evaluation resizes them to fit the crop and
the predictions back).
"""

import json

import pytest

from cmt import export_main
from cmt import predict
from cmt.data import build_data
from cmt.data import synthetic
from cmt.evaluation import offline_evaluation
from cmt.trainer import train_main
from tests.trainer.conftest import DEMO_CONFIG
from tests.trainer.conftest import param_flags

VAL_SIZES = [(48, 60), (90, 120), (130, 70), (56, 100), (65, 65)]
PQ_KEYS = [f'{m}{group}' for m in ('pq', 'sq', 'rq', 'n')
           for group in ('', '_things', '_stuff')]
OVERRIDES = [
    'trainer_options.steps_per_loop=4',
    'trainer_options.save_summaries_steps=4',
    'trainer_options.save_checkpoints_steps=4',
    'trainer_options.solver_options.warmup_steps=1',
    'trainer_options.solver_options.training_number_of_steps=4',
    'eval_dataset_options.batch_size=2',
    'evaluator_options.save_predictions=true',
    # Keep every segment so that the counts are not trivially zero.
    'evaluator_options.post_processing=PER_PIXEL',
    'evaluator_options.thing_class_threshold=0',
    'evaluator_options.pixel_confidence_threshold=0',
    'evaluator_options.thing_area_limit=0',
    'evaluator_options.stuff_area_limit=0',
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


@pytest.mark.slow
def test_every_evaluation_path_gives_the_same_numbers(tmp_path):
  raw, records = tmp_path / 'raw', tmp_path / 'records'
  synthetic.write_dataset(str(raw), num_train=0, num_val=len(VAL_SIZES),
                          image_size=VAL_SIZES, seed=5)
  synthetic.write_dataset(str(tmp_path / 'train'), num_train=8, num_val=0,
                          image_size=(65, 65), seed=5)
  for folder, split in ((raw, 'val'), (tmp_path / 'train', 'train')):
    assert build_data.main(synthetic.build_data_args(
        str(folder), split, str(records)) + ['--num_shards=1']) == 0
  params = {'TRAIN_SET': str(records / 'train-*'),
            'VAL_SET': str(records / 'val-*'),
            'CATEGORIES_JSON': str(raw / 'categories.json')}
  model_dir = tmp_path / 'run'
  flags = [f'--config_file={DEMO_CONFIG}', f'--model_dir={model_dir}',
           *param_flags(params), *[f'--override={o}' for o in OVERRIDES]]

  assert train_main.main(flags + ['--mode=train_and_eval']) == 0
  in_training = json.loads(
      (model_dir / 'eval' / 'metrics.json').read_text())['metrics']
  assert in_training['num_images'] == len(VAL_SIZES)
  assert sum(c['tp'] + c['fp'] for c in in_training['per_class'].values())
  predictions = model_dir / 'eval' / 'predictions'
  saved = _cmt_evaluate(raw, predictions / 'panoptic.json',
                        predictions / 'panoptic')

  assert train_main.main(flags + ['--mode=eval']) == 0
  eval_mode = json.loads(
      (model_dir / 'eval' / 'metrics.json').read_text())['metrics']

  saved_model = tmp_path / 'saved_model'
  model_flags = [f'--config_file={DEMO_CONFIG}',
                 f'--checkpoint_path={model_dir}', *param_flags(params),
                 *[f'--override={o}' for o in OVERRIDES]]
  assert export_main.main(model_flags + [f'--output_path={saved_model}']) == 0
  predicted = tmp_path / 'predicted'
  assert predict.main([f'--model={saved_model}',
                       f'--input={raw / "images" / "val"}',
                       f'--output_dir={predicted}', '--no_progress']) == 0
  exported = _cmt_evaluate(raw, predicted / 'panoptic.json',
                           predicted / 'panoptic')

  expected = _pq_figures(in_training)
  assert _pq_figures(eval_mode) == expected
  assert _pq_figures(saved) == expected
  assert _pq_figures(exported) == expected

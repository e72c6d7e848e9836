"""Evaluation under TPU-like constraints: XLA, numbers only, any strategy.

7 validation images (original sizes around the 65 x 65 crop) at global
batch 4 are evaluated over 1, 2 and 4 mirrored logical CPU devices with the
eval step compiled by XLA: the metrics are identical, every image counts
once, and no string tensor is an input of the replica function.
"""

import json
import subprocess
import sys

import pytest

from cmt.data import build_data
from cmt.data import synthetic
from tests.conftest import REPO_ROOT

VAL_SIZES = [(48, 60), (90, 120), (130, 70), (56, 100), (65, 65), (80, 50),
             (60, 64)]


def _evaluate(output_dir, replicas, params_json):
  result = subprocess.run(
      [sys.executable, '-m', 'tests.trainer.eval_distribution_check',
       str(output_dir), str(replicas), str(params_json)], cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads((output_dir / f'replicas_{replicas}.json').read_text())


@pytest.mark.slow
def test_xla_eval_on_1_2_4_replicas_gives_identical_metrics(tmp_path):
  raw, records = tmp_path / 'raw', tmp_path / 'records'
  synthetic.write_dataset(str(raw), num_train=0, num_val=len(VAL_SIZES),
                          image_size=VAL_SIZES, seed=9)
  assert build_data.main(synthetic.build_data_args(
      str(raw), 'val', str(records)) + ['--num_shards=2']) == 0
  params_json = tmp_path / 'params.json'
  params_json.write_text(json.dumps({
      'TRAIN_SET': str(records / 'val-*'), 'VAL_SET': str(records / 'val-*'),
      'CATEGORIES_JSON': str(raw / 'categories.json')}))
  results = {r: _evaluate(tmp_path, r, params_json) for r in (1, 2, 4)}
  one = results[1]['metrics']
  assert one['num_images'] == len(VAL_SIZES)
  # No image dropped or counted twice: every ground-truth segment is a
  # true positive or a false negative exactly once.
  gt = json.loads((raw / 'panoptic_val.json').read_text())
  assert sum(c['tp'] + c['fn'] for c in one['per_class'].values()) == sum(
      len(a['segments_info']) for a in gt['annotations'])
  for replicas, result in results.items():
    assert result['num_replicas'] == replicas
    assert result['jit_compile'] is True
    assert result['num_traces'] >= 1
    assert 'string' not in result['input_dtypes'], result['input_dtypes']
    assert result['metrics'] == one, replicas

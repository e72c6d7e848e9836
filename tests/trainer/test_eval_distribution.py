"""Evaluation on any number of replicas and hosts, under TPU-like
constraints (XLA, numbers only).

9 validation images (original sizes around the 65 x 65 crop, all
different) are evaluated with the tiny synthetic config's batch of one
image per replica, the eval step compiled by XLA: on one device; on 4
simulated hosts of 2 replicas each, one input pipeline per host and every
replica's outputs handed to one process (TPUStrategy's single client), in
two steps (the images reach the process host after host, not in index
order; the second step is one image and padding); and by
MultiWorkerMirroredStrategy with 2 worker processes on loopback. The
metrics and every image's prediction are identical everywhere, every image
counts once, and no string tensor is an input of the replica function.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from cmt.data import synthetic
from cmt.tools import build_data as build_data_tool
from tests.conftest import REPO_ROOT
from tests.trainer import multi_worker_check

VAL_SIZES = [(48, 60), (90, 120), (130, 70), (56, 100), (65, 65), (80, 50),
             (60, 64), (72, 40), (100, 90)]
CHECK = ['-m', 'tests.trainer.eval_distribution_check']
# (simulated hosts, replicas per host).
LAYOUTS = [(1, 1), (4, 2)]


def _load(output_dir, name):
  result = json.loads((output_dir / f'{name}.json').read_text())
  with np.load(output_dir / f'{name}.npz') as predictions:
    result['predictions'] = dict(predictions)
  return result


def _evaluate(output_dir, params_json, hosts, replicas):
  result = subprocess.run(
      [sys.executable, *CHECK, str(output_dir), str(params_json),
       str(hosts), str(replicas)], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return _load(output_dir, f'hosts_{hosts}x{replicas}')


@pytest.fixture(scope='module')
def val_set(tmp_path_factory):
  """The 9 images as TFRecords (2 shards); (raw folder, params JSON)."""
  root = tmp_path_factory.mktemp('eval_distribution')
  raw, records = root / 'raw', root / 'records'
  synthetic.write_dataset(str(raw), num_train=0, num_val=len(VAL_SIZES),
                          image_size=VAL_SIZES, seed=9)
  assert build_data_tool.main(synthetic.build_data_args(
      str(raw), 'val', str(records)) + ['--num_shards=2']) == 0
  params_json = root / 'params.json'
  params_json.write_text(json.dumps({
      'TRAIN_SET': str(records / 'val-*'), 'VAL_SET': str(records / 'val-*'),
      'CATEGORIES_JSON': str(raw / 'categories.json')}))
  return raw, params_json


@pytest.mark.slow
def test_one_device_simulated_hosts_and_workers_score_alike(tmp_path,
                                                            val_set):
  raw, params_json = val_set
  results = {layout: _evaluate(tmp_path, params_json, *layout)
             for layout in LAYOUTS}
  multi_worker_check.run_cluster([*CHECK, str(tmp_path), str(params_json)],
                                 tmp_path, timeout=900)
  workers = [_load(tmp_path, f'worker_{i}') for i in range(2)]
  one = results[(1, 1)]
  assert one['metrics']['num_images'] == len(VAL_SIZES)
  # No image dropped or counted twice: every ground-truth segment is a
  # true positive or a false negative exactly once.
  gt = json.loads((raw / 'panoptic_val.json').read_text())
  assert sum(c['tp'] + c['fn'] for c in one['metrics']['per_class'].values()
             ) == sum(len(a['segments_info']) for a in gt['annotations'])
  assert sorted(one['predictions']) == sorted(
      image['file_name'].rsplit('.', 1)[0] for image in gt['images'])
  for (hosts, replicas), result in results.items():
    assert result['num_replicas'] == hosts * replicas
    # One input pipeline per simulated host, each knowing its id.
    assert result['input_pipelines'] == [[h, hosts] for h in range(hosts)]
  for index, worker in enumerate(workers):
    assert worker['num_replicas'] == 2
    assert worker['input_pipelines'] == [[index, 2]]
  for result in [*results.values(), *workers]:
    assert result['jit_compile'] is True
    assert result['num_traces'] >= 1
    assert 'string' not in result['input_dtypes'], result['input_dtypes']
    # PQ, SQ, RQ (all, things, stuff), per-class counts, num_images, AP.
    assert result['metrics'] == one['metrics']
    assert sorted(result['predictions']) == sorted(one['predictions'])
    for name, prediction in one['predictions'].items():
      np.testing.assert_array_equal(result['predictions'][name], prediction,
                                    err_msg=name)

"""Two worker processes on 127.0.0.1 train in sync on seeded input, stop and
resume in sync; the chief checkpoints, and every worker scores the whole
evaluation set once, each worker's replicas having read its share."""

import json

import pytest

from cmt.trainer import checkpoints
from tests.trainer import multi_worker_check
from tests.trainer import standins

STEPS = 4


@pytest.mark.slow
def test_two_workers_train_in_sync_and_chief_checkpoints(tmp_path):
  model_dir = tmp_path / 'model'
  outputs = multi_worker_check.run_cluster(
      ['-m', 'tests.trainer.multi_worker_check', str(model_dir), str(STEPS)],
      tmp_path)
  for output in outputs:
    assert 'resuming after step 2' in output, output[-3000:]
  results = [[l for l in out.splitlines() if l.startswith('RESULT ')][-1]
             .split()[1:] for out in outputs]
  for strategy_name, replicas, step, _, evaluated in results:
    assert strategy_name == 'MultiWorkerMirroredStrategy'
    assert int(replicas) == 2 and int(step) == STEPS
    # Each worker (the chief writes metrics.json) scored every image once.
    assert int(evaluated) == standins.NUM_IMAGES
  # Same final weights on both workers: they stepped in sync.
  assert float(results[0][3]) == float(results[1][3])
  assert checkpoints.latest_step(str(model_dir)) == STEPS
  metrics = json.loads((model_dir / 'eval' / 'metrics.json').read_text())
  assert metrics['step'] == STEPS
  assert metrics['metrics']['num_images'] == standins.NUM_IMAGES
  # The other worker's throw-away checkpoint folder is gone.
  assert not (model_dir / 'workers').exists() or not any(
      (model_dir / 'workers').iterdir())

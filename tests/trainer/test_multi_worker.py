"""Two worker processes on 127.0.0.1 train in sync on seeded input, stop and
resume in sync; the chief checkpoints and evaluates the whole evaluation
set."""

import json
import os
import socket
import subprocess
import sys

import pytest

from cmt.trainer import checkpoints
from tests.conftest import REPO_ROOT
from tests.trainer import standins

TIMEOUT_SECONDS = 240
STEPS = 4


def _free_ports(count):
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(('127.0.0.1', 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


@pytest.mark.slow
def test_two_workers_train_in_sync_and_chief_checkpoints(tmp_path):
  workers = [f'127.0.0.1:{port}' for port in _free_ports(2)]
  model_dir = tmp_path / 'model'
  processes, logs = [], []
  for index in range(2):
    environ = dict(os.environ)
    environ['TF_CONFIG'] = json.dumps({
        'cluster': {'worker': workers},
        'task': {'type': 'worker', 'index': index}})
    environ['CUDA_VISIBLE_DEVICES'] = ''
    # Files, not pipes: a full pipe would block one worker and so both.
    stdout = open(tmp_path / f'worker{index}.out', 'w+', encoding='utf-8')
    stderr = open(tmp_path / f'worker{index}.err', 'w+', encoding='utf-8')
    logs.append((stdout, stderr))
    processes.append(subprocess.Popen(
        [sys.executable, '-m', 'tests.trainer.multi_worker_check',
         str(model_dir), str(STEPS)], cwd=REPO_ROOT, env=environ,
        stdout=stdout, stderr=stderr, text=True))
  try:
    for process in processes:
      process.wait(timeout=TIMEOUT_SECONDS)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
  results = []
  for process, (stdout, stderr) in zip(processes, logs):
    stdout.seek(0)
    stderr.seek(0)
    out, err = stdout.read(), stderr.read()
    stdout.close()
    stderr.close()
    assert process.returncode == 0, err[-3000:]
    assert 'resuming after step 2' in out + err, (out + err)[-3000:]
    line = [l for l in out.splitlines() if l.startswith('RESULT ')][-1]
    results.append(line.split()[1:])
  for strategy_name, replicas, step, _, evaluated in results:
    assert strategy_name == 'MultiWorkerMirroredStrategy'
    assert int(replicas) == 2 and int(step) == STEPS
    # Each worker (the chief writes metrics.json) saw the whole eval set.
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

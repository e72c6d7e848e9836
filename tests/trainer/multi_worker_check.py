"""MultiWorkerMirroredStrategy on loopback: `run_cluster` starts worker
processes on 127.0.0.1 with their TF_CONFIG; run as a module, this file is
the body of the multi-worker training test: one worker trains the stand-in
model on seeded input for half the steps, stops, then resumes, trains the
rest and evaluates; it prints the sum of its final weights (equal on every
worker when in sync) and how many images it evaluated.

    TF_CONFIG=... python -m tests.trainer.multi_worker_check MODEL_DIR STEPS
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

from tests.conftest import REPO_ROOT


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


def run_cluster(argv, log_dir: pathlib.Path, num_workers: int = 2,
                timeout: float = 240) -> list:
  """Runs `python argv...` as each worker of a loopback cluster (CPU only)
  and returns each one's standard output followed by its standard error
  (the log); fails with a worker's stderr."""
  workers = [f'127.0.0.1:{port}' for port in _free_ports(num_workers)]
  processes, logs = [], []
  for index in range(num_workers):
    environ = dict(os.environ)
    environ['TF_CONFIG'] = json.dumps({
        'cluster': {'worker': workers},
        'task': {'type': 'worker', 'index': index}})
    environ['CUDA_VISIBLE_DEVICES'] = ''
    # Files, not pipes: a full pipe would block one worker and so all.
    stdout = open(log_dir / f'worker{index}.out', 'w+', encoding='utf-8')  # pylint: disable=consider-using-with
    stderr = open(log_dir / f'worker{index}.err', 'w+', encoding='utf-8')  # pylint: disable=consider-using-with
    logs.append((stdout, stderr))
    processes.append(subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, *argv], cwd=REPO_ROOT, env=environ, stdout=stdout,
        stderr=stderr, text=True))
  try:
    for process in processes:
      process.wait(timeout=timeout)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
  outputs = []
  for process, (stdout, stderr) in zip(processes, logs):
    stdout.seek(0)
    stderr.seek(0)
    out, err = stdout.read(), stderr.read()
    stdout.close()
    stderr.close()
    assert process.returncode == 0, err[-3000:]
    outputs.append(out + err)
  return outputs


def main(model_dir: str, steps: int):
  # pylint: disable=g-import-not-at-top
  from absl import logging
  from cmt.trainer import strategy as strategy_lib
  from cmt.trainer import train_lib
  from tests.trainer import standins
  logging.set_verbosity(logging.INFO)
  strategy = strategy_lib.create_strategy()
  options = standins.options(steps=steps // 2, batch=8, optimizer='ADAM',
                             seed=3)
  options.evaluator_options.eval_steps = 0  # the whole set
  train_lib.run_experiment('train', options, model_dir, strategy,
                           standins.builders())
  # A new run in the same model_dir: every worker resumes at the chief's
  # last step, and the seeded input skips the examples already used.
  options.trainer_options.solver_options.training_number_of_steps = steps
  run = train_lib.run_experiment('train_and_eval', options, model_dir,
                                 strategy, standins.builders())
  checksum = sum(float(np.sum(w, dtype=np.float64))
                 for w in run.model.get_weights())
  import tensorflow as tf
  kind = ('MultiWorkerMirroredStrategy' if isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy)
          else type(strategy).__name__)
  print(f'RESULT {kind} '
        f'{strategy.num_replicas_in_sync} '
        f'{int(run.optimizer.iterations.numpy())} {checksum!r} '
        f'{run.evaluator.last_result["num_images"]}', flush=True)


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]))

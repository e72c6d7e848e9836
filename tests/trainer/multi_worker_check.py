"""Subprocess body of the multi-worker test: one worker of a TF_CONFIG
cluster trains the stand-in model with MultiWorkerMirroredStrategy on
seeded input for half the steps, stops, then resumes, trains the rest and
evaluates; it prints the sum of its final weights (equal on every worker
when in sync) and how many images it evaluated.

    TF_CONFIG=... python -m tests.trainer.multi_worker_check MODEL_DIR STEPS
"""

import sys

import numpy as np


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

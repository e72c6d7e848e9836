"""Subprocess body of the seeded-resume test: MirroredStrategy over 2
logical CPU devices, seeded input (whose distributed iterator cannot be
checkpointed).

Trains the stand-in model 4 steps straight, and 2 steps then a resumed run
to 4 in another model_dir, from the same initial weights; saves both final
weights, and the error a global batch of 7 gives, to OUTPUT_DIR/result.npz.

    python -m tests.trainer.seeded_resume_check OUTPUT_DIR
"""

import os
import sys

import numpy as np
import tensorflow as tf


def main(output_dir: str):
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  # pylint: disable=g-import-not-at-top
  from absl import logging
  import tf_keras
  from cmt.trainer import train_lib
  from tests.trainer import standins
  logging.set_verbosity(logging.INFO)
  devices = [d.name for d in tf.config.list_logical_devices('CPU')]
  strategy = tf.distribute.MirroredStrategy(devices)
  # 4 batches of 8 per pass over the 32 stand-in images: a resumed run that
  # restarted the input would train on other batches.
  options = standins.options(steps=4, batch=8, optimizer='ADAM',
                             steps_per_loop=1, seed=7)

  def run(model_dir, steps, resume=False):
    tf_keras.utils.set_random_seed(1)
    build = train_lib.run_experiment if resume else train_lib.build_run
    built = build('train', options, os.path.join(output_dir, model_dir),
                  strategy, standins.builders())
    if not resume:
      built.controller.train(steps=steps)
    return built

  straight = run('straight', 4)
  run('resumed', 2)
  resumed = run('resumed', 4, resume=True)
  options.train_dataset_options.batch_size = 7
  try:
    run('odd_batch', 1)
    odd_batch_error = ''
  except ValueError as error:
    odd_batch_error = str(error)
  np.savez(os.path.join(output_dir, 'result.npz'),
           replicas=strategy.num_replicas_in_sync,
           straight_step=int(straight.optimizer.iterations.numpy()),
           resumed_step=int(resumed.optimizer.iterations.numpy()),
           odd_batch_error=odd_batch_error,
           **{f'straight_{i}': w
              for i, w in enumerate(straight.model.get_weights())},
           **{f'resumed_{i}': w
              for i, w in enumerate(resumed.model.get_weights())})


if __name__ == '__main__':
  main(sys.argv[1])

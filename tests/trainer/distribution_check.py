"""Subprocess body of the distribution test: one run over R replicas.

Splits this process's CPU into R logical devices, sets the stand-in model
(SyncBatchNorm) to fixed seeded weights, trains two SGD steps on the fixed
global batch under MirroredStrategy over the R devices, and saves the
weights and the reported loss to OUTPUT_DIR/replicas_R.npz. (One strategy
per process: collective groups of different sizes cannot share one.)

    python -m tests.trainer.distribution_check OUTPUT_DIR R
"""

import os
import sys

import numpy as np
import tensorflow as tf


def main(output_dir: str, replicas: int):
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
  # pylint: disable=g-import-not-at-top
  from cmt.trainer import train_lib
  from tests.trainer import standins
  devices = [d.name for d in tf.config.list_logical_devices('CPU')]
  strategy = tf.distribute.MirroredStrategy(devices)
  options = standins.options(steps=2, batch=8, optimizer='SGD')
  run = train_lib.build_run('train', options,
                            os.path.join(output_dir, f'run_{replicas}'),
                            strategy, standins.builders(sync_batchnorm=True))
  rng = np.random.default_rng(0)
  initial = []
  for variable in run.model.trainable_variables:
    value = rng.normal(scale=0.3, size=variable.shape).astype(np.float32)
    variable.assign(value)
    initial.append(value)
  output = run.trainer.train(tf.constant(2, tf.int32))
  np.savez(os.path.join(output_dir, f'replicas_{replicas}.npz'),
           loss=float(output['losses/total_loss']),
           num_replicas=strategy.num_replicas_in_sync,
           max_abs_update=max(
               float(np.abs(v.numpy() - i).max())
               for v, i in zip(run.model.trainable_variables, initial)),
           **{f'w{i}': w for i, w in enumerate(run.model.get_weights())})


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]))

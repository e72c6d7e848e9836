"""One factory for the tf.distribute strategy every mode runs under.

DeepLab2's convention, extended to several workers:

| launch                                   | strategy                        |
| ---------------------------------------- | ------------------------------- |
| `--master=TPU_NAME_OR_ADDRESS`           | TPUStrategy (e.g. 64 cores)     |
| `TF_CONFIG` naming two or more workers   | MultiWorkerMirroredStrategy     |
| `--num_gpus=N`, N >= 2                   | MirroredStrategy over N GPUs    |
| anything else                            | the default one-device strategy |
"""

import json
import os
from typing import Mapping, Optional

from absl import logging
import tensorflow as tf


class StrategyError(ValueError):
  """A launch configuration that names no usable strategy."""


def _num_workers(tf_config: Optional[str]) -> int:
  if not tf_config:
    return 0
  try:
    config = json.loads(tf_config)
  except json.JSONDecodeError as error:
    raise StrategyError(f'TF_CONFIG is not valid JSON: {error}') from None
  cluster = config.get('cluster', {})
  return len(cluster.get('worker', [])) + len(cluster.get('chief', []))


def create_strategy(master: str = '', num_gpus: int = 0,
                    environ: Optional[Mapping[str, str]] = None
                    ) -> tf.distribute.Strategy:
  """Returns the strategy for this launch (see the module table).

  Args:
    master: a TPU name, `grpc://` address or 'local'; empty for no TPU.
    num_gpus: GPUs to mirror over on this machine (0 or 1: no mirroring).
    environ: where to read TF_CONFIG (default: os.environ).
  """
  environ = os.environ if environ is None else environ
  if num_gpus < 0:
    raise StrategyError(f'--num_gpus must be >= 0, got {num_gpus}')
  if master:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=master)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
  elif _num_workers(environ.get('TF_CONFIG')) >= 2:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif num_gpus >= 2:
    gpus = tf.config.list_logical_devices('GPU')
    if len(gpus) < num_gpus:
      raise StrategyError(f'--num_gpus={num_gpus} but only {len(gpus)} GPU(s) '
                          'are visible')
    strategy = tf.distribute.MirroredStrategy(
        devices=[gpu.name for gpu in gpus[:num_gpus]])
  else:
    strategy = tf.distribute.get_strategy()
  logging.info('Strategy %s with %d replica(s) in sync',
               type(strategy).__name__, strategy.num_replicas_in_sync)
  return strategy


def is_tpu_strategy(strategy: tf.distribute.Strategy) -> bool:
  return isinstance(strategy, (tf.distribute.TPUStrategy,
                               tf.distribute.experimental.TPUStrategy))

"""One factory for the tf.distribute strategy every mode runs under.

DeepLab2's convention, extended to several workers:

| launch                                   | strategy                        |
| ---------------------------------------- | ------------------------------- |
| `--master=TPU_NAME_OR_ADDRESS`, `local`  | TPUStrategy (e.g. 64 cores)     |
| `TF_CONFIG` naming two or more workers   | MultiWorkerMirroredStrategy     |
| `--num_gpus=N`, N >= 2                   | MirroredStrategy over N GPUs    |
| `--master=cpu`                           | the default one-device strategy |
| anything else, no TPU visible            | the default one-device strategy |

Anything else where a TPU is visible (`visible_tpu`) is refused: a paper
config must not train on the CPU because `--master` was forgotten.
"""

import glob
import json
import os
from typing import Callable, Mapping, Optional

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


# PCI ids of Cloud TPU chips (vendor Google): v2/v3, v4, v5p, v5e, v6e. A
# TPU VM shows them as /dev/accel* (v2-v4) or /dev/vfio/N (v5 on).
_GOOGLE_PCI_VENDOR = '0x1ae0'
_TPU_PCI_DEVICES = ('0x0027', '0x005e', '0x0062', '0x0063', '0x006f')
CPU_MASTER = 'cpu'


def _tpu_pci_device(root: str) -> Optional[str]:
  for device in sorted(glob.glob(os.path.join(root, '*'))):
    try:
      with open(os.path.join(device, 'vendor'), encoding='ascii') as f:
        vendor = f.read().strip()
      with open(os.path.join(device, 'device'), encoding='ascii') as f:
        chip = f.read().strip()
    except OSError:
      continue
    if vendor == _GOOGLE_PCI_VENDOR and chip in _TPU_PCI_DEVICES:
      return device
  return None


def visible_tpu(environ: Mapping[str, str], dev_root: str = '/dev',
                pci_root: str = '/sys/bus/pci/devices') -> str:
  """What shows a TPU on this machine ('' for nothing), without asking
  TensorFlow (which on a TPU VM may wait minutes for the metadata server):
  `TPU_NAME`, /dev/accel* devices or a Cloud TPU chip on the PCI bus."""
  if environ.get('TPU_NAME'):
    return f'TPU_NAME={environ["TPU_NAME"]} is set'
  accel = sorted(glob.glob(os.path.join(dev_root, 'accel[0-9]*')))
  if accel:
    return f'{accel[0]} exists'
  device = _tpu_pci_device(pci_root)
  return f'a Cloud TPU chip is on the PCI bus ({device})' if device else ''


def create_strategy(master: str = '', num_gpus: int = 0,
                    environ: Optional[Mapping[str, str]] = None,
                    tpu_probe: Optional[Callable[[Mapping[str, str]],
                                                 str]] = None
                    ) -> tf.distribute.Strategy:
  """Returns the strategy for this launch (see the module table).

  Args:
    master: a TPU name, `grpc://` address or 'local' (this TPU VM's TPU);
      'cpu' for no TPU even where one is visible; empty: no TPU, refused
      where `tpu_probe` sees one.
    num_gpus: GPUs to mirror over on this machine (0 or 1: no mirroring).
    environ: where to read TF_CONFIG (default: os.environ).
    tpu_probe: (environ) -> what shows a TPU, '' for none (default:
      `visible_tpu`; tests pass their own).
  """
  environ = os.environ if environ is None else environ
  if num_gpus < 0:
    raise StrategyError(f'--num_gpus must be >= 0, got {num_gpus}')
  if master and master != CPU_MASTER:
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
    evidence = '' if master else (tpu_probe or visible_tpu)(environ)
    if evidence:
      raise StrategyError(
          f'--master is empty but a TPU is visible ({evidence}): pass '
          '--master=local to train on this TPU VM\'s TPU, --master=TPU_NAME '
          f'for a TPU elsewhere, or --master={CPU_MASTER} to run on the CPU')
    strategy = tf.distribute.get_strategy()
  return strategy


def num_input_pipelines(strategy: tf.distribute.Strategy) -> int:
  """Input pipelines `distribute_datasets_from_function` makes: one per
  host (TPU) or worker (multi-worker), else one."""
  if is_tpu_strategy(strategy):
    return strategy.extended.num_hosts
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(cluster.get('worker', [])) + len(cluster.get('chief', [])) or 1
  return 1


def per_replica_batch(strategy: tf.distribute.Strategy, global_batch: int,
                      field: str) -> int:
  """`global_batch` / replicas; ValueError naming `field` if it does not
  divide."""
  replicas = strategy.num_replicas_in_sync
  if global_batch % replicas:
    raise ValueError(
        f'{field} = {global_batch}: the global batch must divide over the '
        f'{replicas} replicas of {type(strategy).__name__}; use a multiple '
        f'of {replicas}')
  return global_batch // replicas


def describe(strategy: tf.distribute.Strategy,
             train_batch: Optional[int] = None) -> str:
  """One line: strategy, replicas, input pipelines (hosts) and batches."""
  replicas = strategy.num_replicas_in_sync
  name = type(strategy).__name__.lstrip('_')
  line = (f'Strategy {name}: {replicas} replica(s), '
          f'{num_input_pipelines(strategy)} host(s) (input pipelines)')
  if train_batch is not None:
    line += (f'; training batch {train_batch} global, '
             f'{train_batch // replicas} per replica')
  return line


def is_tpu_strategy(strategy: tf.distribute.Strategy) -> bool:
  return isinstance(strategy, (tf.distribute.TPUStrategy,
                               tf.distribute.experimental.TPUStrategy))

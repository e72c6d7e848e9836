"""The strategy factory (multi-worker and several replicas: their own tests)."""

import json

import pytest
import tensorflow as tf

from cmt.trainer import strategy as strategy_lib
from cmt.trainer import train_lib
from tests.trainer import standins


def test_plain_launch_gets_the_default_one_device_strategy():
  strategy = strategy_lib.create_strategy(environ={})
  assert strategy is tf.distribute.get_strategy()
  assert strategy.num_replicas_in_sync == 1
  assert not strategy_lib.is_tpu_strategy(strategy)


def test_one_worker_tf_config_is_not_multi_worker():
  config = json.dumps({'cluster': {'worker': ['127.0.0.1:1']},
                       'task': {'type': 'worker', 'index': 0}})
  strategy = strategy_lib.create_strategy(environ={'TF_CONFIG': config})
  assert strategy is tf.distribute.get_strategy()


def test_more_gpus_than_visible_is_named():
  with pytest.raises(strategy_lib.StrategyError, match='--num_gpus=2'):
    strategy_lib.create_strategy(num_gpus=2, environ={})
  with pytest.raises(strategy_lib.StrategyError, match='--num_gpus'):
    strategy_lib.create_strategy(num_gpus=-1, environ={})


def test_bad_tf_config_is_named():
  with pytest.raises(strategy_lib.StrategyError, match='TF_CONFIG'):
    strategy_lib.create_strategy(environ={'TF_CONFIG': '{not json'})


def test_jit_compile_defaults_to_tpu_only():
  options = standins.options()
  strategy = tf.distribute.get_strategy()
  assert not train_lib.use_jit_compile(options, strategy)
  options.trainer_options.jit_compile = True
  assert train_lib.use_jit_compile(options, strategy)


def _fake_pci_device(root, vendor, device):
  folder = root / '0000:00:04.0'
  folder.mkdir(parents=True)
  (folder / 'vendor').write_text(vendor + '\n')
  (folder / 'device').write_text(device + '\n')


def test_visible_tpu_reads_tpu_name_accel_devices_and_the_pci_bus(tmp_path):
  dev, pci = tmp_path / 'dev', tmp_path / 'pci'
  dev.mkdir()
  pci.mkdir()
  assert strategy_lib.visible_tpu({}, str(dev), str(pci)) == ''
  _fake_pci_device(pci, '0x10de', '0x0063')  # another vendor's device
  assert strategy_lib.visible_tpu({}, str(dev), str(pci)) == ''
  assert 'TPU_NAME=my-tpu' in strategy_lib.visible_tpu(
      {'TPU_NAME': 'my-tpu'}, str(dev), str(pci))
  (dev / 'accel0').touch()  # TPU v2-v4 VMs
  assert 'accel0' in strategy_lib.visible_tpu({}, str(dev), str(pci))
  (dev / 'accel0').unlink()
  other = tmp_path / 'pci_v5e'
  _fake_pci_device(other, '0x1ae0', '0x0063')  # v5e: /dev/vfio, PCI id
  assert 'PCI bus' in strategy_lib.visible_tpu({}, str(dev), str(other))


def test_a_visible_tpu_without_master_is_refused_unless_cpu_is_asked():
  probe = lambda environ: '/dev/accel0 exists'
  with pytest.raises(strategy_lib.StrategyError,
                     match='--master is empty but a TPU is visible'):
    strategy_lib.create_strategy(environ={}, tpu_probe=probe)
  strategy = strategy_lib.create_strategy(master='cpu', environ={},
                                          tpu_probe=probe)
  assert strategy is tf.distribute.get_strategy()


def test_launch_line_and_batch_that_does_not_divide():
  strategy = tf.distribute.get_strategy()
  assert strategy_lib.num_input_pipelines(strategy) == 1
  assert strategy_lib.describe(strategy, 8) == (
      'Strategy DefaultDistributionStrategy: 1 replica(s), 1 host(s) (input '
      'pipelines); training batch 8 global, 8 per replica')

  class FourReplicas:
    num_replicas_in_sync = 4

  assert strategy_lib.per_replica_batch(FourReplicas(), 64, 'b') == 16
  with pytest.raises(ValueError, match='b = 6: .* 4 replicas'):
    strategy_lib.per_replica_batch(FourReplicas(), 6, 'b')

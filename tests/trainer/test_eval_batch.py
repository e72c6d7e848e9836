"""The evaluation batch on a replica count: stated per replica it runs on
any; a global one that does not divide over the replicas is refused in
one line by `cmt-train` before anything is built."""

import subprocess
import sys

import pytest

from cmt import config
from cmt import config_checks
from tests.conftest import REPO_ROOT
from tests.trainer.conftest import DEMO_CONFIG

PARAMS = {'TRAIN_SET': 't', 'VAL_SET': 'v', 'CATEGORIES_JSON': 'c'}

# cmt-train with its strategy made MirroredStrategy over 2 logical CPUs.
_TWO_REPLICAS = '''
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cmt.tools import train as train_main
from cmt.trainer import strategy as strategy_lib
devices = [d.name for d in tf.config.list_logical_devices('CPU')]
strategy_lib.create_strategy = (
    lambda *args: tf.distribute.MirroredStrategy(devices))
train_main.run()
'''


def _eval_dataset(*overrides):
  return config.load_config(str(DEMO_CONFIG), params=PARAMS,
                            overrides=overrides).eval_dataset_options


@pytest.mark.parametrize('overrides, replicas, per_replica', [
    ((), 1, 1), ((), 64, 1),  # the config's one image per replica
    (('eval_dataset_options.batch_size_per_replica=2',), 8, 2),
    # A global batch (DeepLab2's field) replaces the per-replica one.
    (('eval_dataset_options.batch_size=8',), 4, 2),
    (('eval_dataset_options.batch_size=8',), 8, 1),
])
def test_per_replica_batch_follows_from_the_replica_count(
    overrides, replicas, per_replica):
  dataset = _eval_dataset(*overrides)
  assert not config_checks.eval_batch_problems(dataset, replicas)
  assert config_checks.eval_batch_per_replica(dataset,
                                              replicas) == per_replica


def test_a_global_batch_that_does_not_divide_is_a_problem():
  dataset = _eval_dataset('eval_dataset_options.batch_size=3')
  assert config_checks.eval_batch_problems(dataset, 2) == [
      'eval_dataset_options.batch_size = 3: does not divide over the 2 '
      'replicas; set a multiple of 2, or batch_size_per_replica (images '
      'per replica, any replica count)']


def test_both_batch_fields_in_a_config_are_one_line(tmp_path):
  text = DEMO_CONFIG.read_text().replace(
      'batch_size_per_replica: 1', 'batch_size_per_replica: 1\n  batch_size: 2')
  path = tmp_path / 'both.textproto'
  path.write_text(text)
  with pytest.raises(config.ConfigError, match=(
      rf'^{path}:\d+:\d+: Field "batch_size" is specified along with field '
      '"batch_size_per_replica", another member of oneof')):
    config.load_config(str(path), params=PARAMS)


@pytest.mark.slow
def test_cmt_train_refuses_an_indivisible_eval_batch_in_one_line(
    tmp_path, synthetic_records):
  args = [f'--config_file={DEMO_CONFIG}', '--mode=eval',
          f'--model_dir={tmp_path / "run"}',
          *[f'--param={k}={v}' for k, v in synthetic_records.items()],
          '--override=eval_dataset_options.batch_size=3']
  result = subprocess.run(
      [sys.executable, '-c', _TWO_REPLICAS, *args], cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1, result.stderr
  assert result.stderr.splitlines() == [
      f'cmt-train: error: {DEMO_CONFIG}: eval_dataset_options.batch_size = 3:'
      ' does not divide over the 2 replicas; set a multiple of 2, or '
      'batch_size_per_replica (images per replica, any replica count)']
  assert not (tmp_path / 'run').exists()

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

"""`cmt-train` and the real CMT-DeepLab train step (tiny widths, CPU)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt import common
from cmt import config as config_lib
from cmt.tools import train as train_main
from cmt.trainer import checkpoints
from cmt.trainer import train_lib
from cmt.trainer import trainer as trainer_lib
from tests.trainer.conftest import DEMO_CONFIG
from tests.trainer.conftest import param_flags

# Ops that call back into Python on the host: never inside the train step.
HOST_CALLBACK_OPS = {'PyFunc', 'PyFuncStateless', 'EagerPyFunc',
                     'NumpyFunction'}
SHORT_RUN = ['--override=trainer_options.steps_per_loop=2',
             '--override=trainer_options.save_summaries_steps=2',
             '--override=trainer_options.save_checkpoints_steps=2',
             '--override=trainer_options.solver_options.warmup_steps=1']


def _events(folder):
  return [name for name in os.listdir(folder) if 'tfevents' in name]


@pytest.mark.slow
def test_cmt_train_trains_then_resumes_and_evaluates(tmp_path,
                                                     synthetic_records,
                                                     capsys):
  model_dir = tmp_path / 'run'
  common_flags = [f'--config_file={DEMO_CONFIG}', f'--model_dir={model_dir}',
                  *param_flags(synthetic_records), *SHORT_RUN]
  assert train_main.main(
      common_flags + ['--mode=train', '--override=trainer_options.'
                      'solver_options.training_number_of_steps=2']) == 0
  assert checkpoints.latest_step(str(model_dir)) == 2
  assert _events(model_dir / 'train')
  first_output = capsys.readouterr().out
  assert 'step 2/2 | loss ' in first_output
  assert ('Strategy DefaultDistributionStrategy: 1 replica(s), 1 host(s) '
          '(input pipelines); training batch 4 global, 4 per replica'
          in first_output), first_output

  # Second invocation: resumes at step 2, trains to 4, then evaluates.
  assert train_main.main(
      common_flags + ['--mode=train_and_eval', '--override=trainer_options.'
                      'solver_options.training_number_of_steps=4']) == 0
  second_output = capsys.readouterr().out
  assert 'restored model from' in second_output and 'ckpt-2' in second_output
  assert 'step 4/4 | loss ' in second_output
  assert 'step 2/4' not in second_output  # it did not start over
  assert checkpoints.latest_step(str(model_dir)) == 4
  metrics = json.loads((model_dir / 'eval' / 'metrics.json').read_text())
  assert metrics['step'] == 4
  assert metrics['config_file'] == str(DEMO_CONFIG)
  assert metrics['metrics']['num_images'] == 2
  for key in ('pq', 'sq', 'rq', 'pq_things', 'pq_stuff', 'miou'):
    assert key in metrics['metrics']
  assert _events(model_dir / 'eval')


def test_cmt_train_reports_a_bad_config_clearly(tmp_path, capsys):
  bad = tmp_path / 'bad.textproto'
  bad.write_text('trainer_options { solver_options { base_learning_rat: 1 } }')
  assert train_main.main([f'--config_file={bad}',
                          f'--model_dir={tmp_path}']) == 1
  assert 'base_learning_rat' in capsys.readouterr().err
  assert train_main.main([f'--config_file={bad}']) == 2


def _tiny_options(params, crop=33):
  overrides = [f'train_dataset_options.crop_size={crop},{crop}',
               f'train_dataset_options.min_resize_value={crop}',
               f'train_dataset_options.max_resize_value={crop}',
               'train_dataset_options.batch_size=2',
               'trainer_options.loss_options.instance_discrimination_loss.'
               'sample_count=32']
  return config_lib.load_config(str(DEMO_CONFIG), params=params,
                                overrides=overrides)


def _first_batch(options, info):
  from cmt.data import pipeline  # pylint: disable=g-import-not-at-top
  dataset = pipeline.build_dataset(options.train_dataset_options, info,
                                   is_training=True)
  return trainer_lib.numeric_features(next(iter(dataset)))


def _op_types(graph_def):
  types = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    types.update(node.op for node in function.node_def)
  return types


@pytest.mark.slow
def test_full_train_step_compiles_with_xla_and_has_no_host_callbacks(
    tmp_path, synthetic_records):
  options = _tiny_options(synthetic_records)
  options.trainer_options.jit_compile = True
  run = train_lib.build_run('train', options, str(tmp_path),
                            tf.distribute.get_strategy())
  from cmt.data import dataset_info  # pylint: disable=g-import-not-at-top
  info = dataset_info.get_dataset_info(options.train_dataset_options)
  batch = _first_batch(options, info)
  compiled = run.trainer.compute_gradients
  # _XlaMustCompile: the call raises if any op cannot be compiled.
  losses, gradients = compiled(batch)
  assert np.isfinite(losses[common.LOSS_TOTAL].numpy())
  assert all(g is not None for g in gradients)
  graph = compiled.get_concrete_function(batch).graph.as_graph_def()
  ops = _op_types(graph)
  # Forward and backward pass are both in this one compiled function.
  assert {'Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput'} <= ops
  assert not ops & HOST_CALLBACK_OPS, ops & HOST_CALLBACK_OPS


@pytest.mark.slow
def test_one_mixed_bfloat16_step_of_cmt_deeplab_has_a_finite_loss(
    tmp_path, synthetic_records):
  options = _tiny_options(synthetic_records)
  solver = options.trainer_options.solver_options
  solver.precision = solver.MIXED_BFLOAT16
  options.trainer_options.steps_per_loop = 1
  options.trainer_options.save_summaries_steps = 1
  tf_keras.utils.set_random_seed(0)
  with train_lib.precision_policy(solver):
    run = train_lib.build_run('train', options, str(tmp_path),
                              tf.distribute.get_strategy())
    output = run.trainer.train(tf.constant(1, tf.int32))
  # Mixed precision: the layers compute in bfloat16, the variables stay
  # float32 (under FLOAT32 the first assertion fails).
  assert run.model.compute_dtype == 'bfloat16'
  assert {v.dtype for v in run.model.trainable_variables} == {tf.float32}
  total = output[f'losses/{common.LOSS_TOTAL}']
  assert total.dtype == tf.float32
  assert np.isfinite(total.numpy()), output


def _one_error_line(err):
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  assert lines[0].startswith('cmt-train: error: ')
  return lines[0]


def test_cmt_train_refuses_a_missing_master_where_a_tpu_is_visible(
    tmp_path, synthetic_records, capsys, monkeypatch):
  monkeypatch.setenv('TPU_NAME', 'my-tpu')  # what `visible_tpu` reads
  assert train_main.main([f'--config_file={DEMO_CONFIG}',
                          f'--model_dir={tmp_path / "run"}',
                          *param_flags(synthetic_records)]) == 1
  line = _one_error_line(capsys.readouterr().err)
  assert 'TPU_NAME=my-tpu' in line and '--master=local' in line, line
  assert not (tmp_path / 'run').exists()


def test_cmt_train_refuses_a_batch_that_does_not_divide_over_replicas(
    tmp_path, synthetic_records, capsys, monkeypatch):
  from cmt.trainer import strategy as strategy_lib  # pylint: disable=g-import-not-at-top

  class TwoReplicas:  # what the check reads of a 2-replica strategy
    num_replicas_in_sync = 2

  monkeypatch.setattr(strategy_lib, 'create_strategy',
                      lambda *args, **kwargs: TwoReplicas())
  assert train_main.main([
      f'--config_file={DEMO_CONFIG}', f'--model_dir={tmp_path / "run"}',
      *param_flags(synthetic_records),
      '--override=train_dataset_options.batch_size=3']) == 1
  line = _one_error_line(capsys.readouterr().err)
  assert 'train_dataset_options.batch_size = 3' in line, line
  assert '2 replicas' in line, line
  assert not (tmp_path / 'run').exists()

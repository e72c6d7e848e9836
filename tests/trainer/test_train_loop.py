"""The Orbit train loop on stand-ins: resume, summaries, progress, non-finite
losses, clipping and warm starts (the real model: test_cmt_train.py)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tensorflow.python.framework import config as tf_config

from cmt import common
from cmt.protos import model_pb2
from cmt.trainer import checkpoints
from cmt.trainer import train_lib
from cmt.trainer import trainer as trainer_lib
from tests.trainer import standins


def _strategy():
  return tf.distribute.get_strategy()


@pytest.fixture
def deterministic_ops():
  tf.config.experimental.enable_op_determinism()
  yield
  tf_config.disable_op_determinism()


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path,
                                                          deterministic_ops):
  # 6 steps straight against 3, stop, 3 more. There are 4 batches per pass
  # over the data, so the resumed run must restore its input position (seed
  # set -> iterator checkpointed) as well as the step, Adam's slots and the
  # schedule.
  del deterministic_ops
  options = standins.options(steps=6, optimizer='ADAM', steps_per_loop=1,
                             seed=7)
  tf_keras.utils.set_random_seed(1)
  straight = train_lib.build_run('train', options, str(tmp_path / 'a'),
                                 _strategy(), standins.builders())
  initial = straight.model.get_weights()
  straight.controller.train(steps=6)

  tf_keras.utils.set_random_seed(1)
  first = train_lib.build_run('train', options, str(tmp_path / 'b'),
                              _strategy(), standins.builders())
  for a, b in zip(initial, first.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  first.controller.train(steps=3)  # ... and the run stops here.
  assert checkpoints.latest_step(str(tmp_path / 'b')) == 3
  resumed = train_lib.run_experiment(
      'train', options, str(tmp_path / 'b'), _strategy(), standins.builders())
  assert int(resumed.optimizer.iterations.numpy()) == 6
  for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(straight.optimizer.variables, resumed.optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def _event_tags(folder):
  tags = set()
  for name in tf.io.gfile.listdir(folder):
    if 'tfevents' not in name:
      continue
    for event in tf.compat.v1.train.summary_iterator(os.path.join(folder,
                                                                  name)):
      for value in event.summary.value:
        tags.add(value.tag)
  return tags


def test_summaries_progress_line_and_checkpoints(tmp_path):
  lines = []
  options = standins.options(steps=4, optimizer='ADAM')
  train_lib.run_experiment('train', options, str(tmp_path), _strategy(),
                           standins.builders(), print_fn=lines.append)
  tags = _event_tags(str(tmp_path / 'train'))
  for tag in (f'losses/{common.LOSS_SEMANTIC}', f'losses/{common.LOSS_TOTAL}',
              'learning_rate', 'steps_per_second', 'images_per_second'):
    assert tag in tags, sorted(tags)
  assert len(lines) == 2, lines
  assert lines[-1].startswith('step 4/4 | loss ')
  assert 'steps/s' in lines[-1] and 'images/s' in lines[-1]
  assert 'ETA 0m00s' in lines[-1]
  assert checkpoints.latest_step(str(tmp_path)) == 4


def test_non_finite_loss_stops_naming_step_and_losses(tmp_path):
  # Batch index 2 has NaN images: the third step's losses are NaN.
  options = standins.options(steps=6, optimizer='ADAM')
  with pytest.raises(trainer_lib.NonFiniteLossError,
                     match=r'step 3: semantic_loss, total_loss'):
    train_lib.run_experiment('train', options, str(tmp_path), _strategy(),
                             standins.builders(nan_batch=2))
  # The loop holding the bad step saved nothing.
  assert checkpoints.latest_step(str(tmp_path)) == 2


def test_non_finite_loss_only_warns_when_asked(tmp_path):
  options = standins.options(steps=4, optimizer='ADAM',
                             extra_trainer='stop_on_nonfinite_loss: false')
  run = train_lib.run_experiment('train', options, str(tmp_path), _strategy(),
                                 standins.builders(nan_batch=2))
  assert int(run.optimizer.iterations.numpy()) == 4


def test_gradient_clipping_bounds_the_global_update(tmp_path):
  # SGD without momentum: the update is lr * clipped gradient, whose global
  # norm is the clip norm (the raw gradient norm is far larger).
  options = standins.options(
      steps=2, optimizer='SGD', steps_per_loop=1,
      extra_solver='gradient_clip_norm: 0.001 sgd_momentum: 0.0 '
                   'backbone_learning_rate_multiplier: 1.0')
  run = train_lib.build_run('train', options, str(tmp_path), _strategy(),
                            standins.builders(sync_batchnorm=False))
  before = [v.numpy() for v in run.model.trainable_variables]
  run.trainer.train(tf.constant(1, tf.int32))
  update = np.sqrt(sum(
      float(np.sum((v.numpy() - b) ** 2))
      for v, b in zip(run.model.trainable_variables, before)))
  np.testing.assert_allclose(update / 0.1, 0.001, rtol=1e-3)


def _train_and_save(model_dir, num_classes=standins.NUM_CLASSES):
  run = train_lib.run_experiment(
      'train', standins.options(steps=2, optimizer='ADAM'), model_dir,
      _strategy(), standins.builders(num_classes=num_classes))
  return run.model


@pytest.mark.parametrize('scope', ['BACKBONE', 'WHOLE_MODEL'])
def test_warm_start_restores_by_scope_and_skips_other_shapes(tmp_path, scope):
  source = _train_and_save(str(tmp_path / 'source'))
  target = standins.TinyModel(num_classes=5)  # another class count
  target(tf.zeros([1, standins.CROP, standins.CROP, 3]))
  head_before = target.head.kernel.numpy()
  report = checkpoints.warm_start(
      target, str(tmp_path / 'source'),
      model_pb2.ModelOptions.RestoreScope.Value(scope),
      standins.pretrained_variables(target, model_pb2.ModelOptions(
          initial_checkpoint=str(tmp_path / 'source'))))
  np.testing.assert_array_equal(target.backbone_conv.kernel.numpy(),
                                source.backbone_conv.kernel.numpy())
  np.testing.assert_array_equal(target.head.kernel.numpy(), head_before)
  if scope == 'WHOLE_MODEL':
    # Moving statistics are not pretrained variables but match in shape.
    np.testing.assert_array_equal(target.backbone_norm.moving_mean.numpy(),
                                  source.backbone_norm.moving_mean.numpy())
    assert sorted(p for p, _, _ in report.shape_mismatch) == [
        'model/head/bias', 'model/head/kernel']
  else:
    assert report.out_of_scope == 4  # moving mean/var, head kernel/bias
    assert not report.shape_mismatch


def test_initial_checkpoint_is_used_only_without_own_checkpoint(tmp_path):
  source = _train_and_save(str(tmp_path / 'source'))
  options = standins.options(steps=2, optimizer='ADAM')
  options.model_options.initial_checkpoint = str(tmp_path / 'source')
  options.model_options.restore_scope = model_pb2.ModelOptions.WHOLE_MODEL
  run = train_lib.build_run('train', options, str(tmp_path / 'target'),
                            _strategy(), standins.builders())
  np.testing.assert_array_equal(run.model.head.kernel.numpy(),
                                source.head.kernel.numpy())


def test_warm_start_errors_name_the_field(tmp_path):
  model = standins.TinyModel()
  model(tf.zeros([1, standins.CROP, standins.CROP, 3]))
  with pytest.raises(ValueError, match='initial_checkpoint'):
    checkpoints.warm_start(model, str(tmp_path), 2, [])


def test_bad_mode_and_intervals_are_named(tmp_path):
  with pytest.raises(ValueError, match='--mode'):
    train_lib.build_run('fit', standins.options(), str(tmp_path), _strategy(),
                        standins.builders())
  options = standins.options()
  options.trainer_options.save_summaries_steps = 3
  with pytest.raises(ValueError, match='save_summaries_steps'):
    train_lib.build_run('train', options, str(tmp_path), _strategy(),
                        standins.builders())


@pytest.mark.parametrize('precision,compute_dtype', [
    ('MIXED_BFLOAT16', 'bfloat16'), ('MIXED_FLOAT16', 'float16')])
def test_mixed_precision_step_has_finite_float32_loss(tmp_path, precision,
                                                      compute_dtype):
  options = standins.options(steps=2, optimizer='ADAM', steps_per_loop=1,
                             extra_solver=f'precision: {precision}')
  with train_lib.precision_policy(options.trainer_options.solver_options):
    run = train_lib.build_run('train', options, str(tmp_path), _strategy(),
                              standins.builders(sync_batchnorm=False))
    assert run.model.backbone_conv.compute_dtype == compute_dtype
    assert run.model.backbone_conv.kernel.dtype == tf.float32
    before = run.model.head.kernel.numpy()
    output = run.trainer.train(tf.constant(1, tf.int32))
  loss = output[f'losses/{common.LOSS_TOTAL}']
  assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
  # float16 scales the loss dynamically; the step was applied, not skipped.
  assert isinstance(run.optimizer,
                    tf_keras.mixed_precision.LossScaleOptimizer) == (
                        precision == 'MIXED_FLOAT16')
  assert np.abs(run.model.head.kernel.numpy() - before).max() > 0
  assert tf_keras.mixed_precision.global_policy().name == 'float32'


def test_continuous_eval_evaluates_the_last_checkpoint_and_stops(tmp_path):
  options = standins.options(steps=4, optimizer='ADAM')
  train_lib.run_experiment('train', options, str(tmp_path), _strategy(),
                           standins.builders())
  options.evaluator_options.continuous_eval_timeout = 0
  run = train_lib.run_experiment('continuous_eval', options, str(tmp_path),
                                 _strategy(), standins.builders(),
                                 config_file='standin.textproto')
  metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
  assert metrics['step'] == 4 and metrics['config_file'] == 'standin.textproto'
  # eval_steps = 2 batches of 4 images.
  assert metrics['metrics']['num_images'] == 8
  assert run.evaluator.last_result['num_images'] == 8
  tags = _event_tags(str(tmp_path / 'eval'))
  for tag in ('pq', 'sq', 'rq', 'pq_things', 'pq_stuff', 'miou',
              'predictions/0', 'predictions/1'):
    assert tag in tags, sorted(tags)
  assert 'predictions/2' not in tags


def test_eval_without_a_checkpoint_is_an_error(tmp_path):
  with pytest.raises(ValueError, match='no checkpoint'):
    train_lib.run_experiment('eval', standins.options(), str(tmp_path),
                             _strategy(), standins.builders())


def test_saved_predictions_land_under_model_dir_eval(tmp_path):
  options = standins.options(steps=2, optimizer='ADAM')
  options.evaluator_options.save_predictions = True
  train_lib.run_experiment('train_and_eval', options, str(tmp_path),
                           _strategy(), standins.builders())
  predictions = tmp_path / 'eval' / 'predictions'
  assert (predictions / 'panoptic.json').is_file()
  assert len(list((predictions / 'panoptic').glob('*.png'))) == 8


def test_missing_dataset_options_are_named(tmp_path):
  options = standins.options()
  options.ClearField('eval_dataset_options')
  with pytest.raises(ValueError, match='eval_dataset_options: missing; '
                     'needed to eval'):
    train_lib.build_run('train_and_eval', options, str(tmp_path), _strategy(),
                        standins.builders())

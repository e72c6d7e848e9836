"""Optimiser of SolverOptions against numpy references of its formulas."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt.protos import trainer_pb2
from cmt.trainer import optimizer as optimizer_lib

Solver = trainer_pb2.SolverOptions


def _solver(**fields):
  solver = Solver(base_learning_rate=0.01, warmup_steps=10,
                  training_number_of_steps=100, poly_learning_power=0.9,
                  poly_end_learning_rate=0.001)
  for name, value in fields.items():
    setattr(solver, name, value)
  return solver


def test_poly_schedule_with_linear_warmup_matches_formula():
  solver = _solver()
  schedule = optimizer_lib.build_learning_rate_schedule(solver)
  for step in (0, 1, 5, 9, 10, 11, 50, 99, 100, 150):
    poly = lambda t: (0.01 - 0.001) * (1 - min(t, 100) / 100) ** 0.9 + 0.001
    expected = poly(10) * step / 10 if step < 10 else poly(step)
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5,
                               err_msg=f'step {step}')


def test_schedule_without_warmup_starts_at_base():
  schedule = optimizer_lib.build_learning_rate_schedule(_solver(warmup_steps=0))
  np.testing.assert_allclose(float(schedule(0)), 0.01, rtol=1e-6)


@pytest.mark.parametrize('field,value,message', [
    ('warmup_steps', 100, 'warmup_steps'),
    ('base_learning_rate', 0.0, 'base_learning_rate'),
    ('backbone_learning_rate_multiplier', -1.0,
     'backbone_learning_rate_multiplier'),
    ('weight_decay', -0.1, 'weight_decay'),
    ('gradient_clip_norm', -1.0, 'gradient_clip_norm'),
    ('optimizer', Solver.OPTIMIZER_UNSPECIFIED, 'optimizer'),
])
def test_bad_solver_field_is_named(field, value, message):
  with pytest.raises(ValueError, match=message):
    optimizer_lib.build_optimizer(_solver(**{field: value}))


def test_bad_precision_is_named():
  with pytest.raises(ValueError, match='precision'):
    optimizer_lib.precision_policy_name(
        _solver(precision=Solver.PRECISION_UNSPECIFIED))


def _numpy_adam(weights, grads_per_step, lrs, multipliers, decay, decayed,
                beta_1=0.9, beta_2=0.999, epsilon=1e-8):
  """Adam (tf_keras form) with per-variable lr and decoupled decay."""
  weights = [w.copy() for w in weights]
  m = [np.zeros_like(w) for w in weights]
  v = [np.zeros_like(w) for w in weights]
  for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
    for i, g in enumerate(grads):
      lr_i = lr * multipliers[i]
      if decayed[i]:
        weights[i] -= weights[i] * decay * lr_i
      m[i] += (g - m[i]) * (1 - beta_1)
      v[i] += (g * g - v[i]) * (1 - beta_2)
      alpha = lr_i * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
      weights[i] -= m[i] * alpha / (np.sqrt(v[i]) + epsilon)
  return weights


@pytest.mark.parametrize('kind,decay', [(Solver.ADAM, 0.0),
                                        (Solver.ADAMW, 0.05)])
def test_backbone_multiplier_and_decoupled_decay_match_numpy(kind, decay):
  rng = np.random.default_rng(1)
  backbone_kernel = tf.Variable(rng.normal(size=(3, 2)).astype(np.float32),
                                name='backbone/conv/kernel')
  backbone_bias = tf.Variable(rng.normal(size=(2,)).astype(np.float32),
                              name='backbone/conv/bias')
  head_kernel = tf.Variable(rng.normal(size=(2, 4)).astype(np.float32),
                            name='head/kernel')
  variables = [backbone_kernel, backbone_bias, head_kernel]
  start = [v.numpy() for v in variables]
  solver = _solver(optimizer=kind, weight_decay=decay,
                   backbone_learning_rate_multiplier=0.1)
  optimizer = optimizer_lib.build_optimizer(solver, [backbone_kernel,
                                                     backbone_bias])
  schedule = optimizer_lib.build_learning_rate_schedule(solver)
  grads_per_step, lrs = [], []
  for step in range(3):
    grads = [rng.normal(size=v.shape).astype(np.float32) for v in variables]
    lrs.append(float(schedule(step)))
    grads_per_step.append(grads)
    optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
  expected = _numpy_adam(start, grads_per_step, lrs, [0.1, 0.1, 1.0], decay,
                         [True, False, True])
  for variable, want in zip(variables, expected):
    np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-7,
                               err_msg=variable.name)
  # The multiplier really changes the update: head moved ~10x the backbone.
  moved = [np.abs(v.numpy() - s).mean() for v, s in zip(variables, start)]
  assert moved[2] > 5 * moved[0]


def test_sgd_backbone_update_is_a_tenth():
  backbone = tf.Variable([1.0, 2.0], name='backbone/kernel')
  head = tf.Variable([1.0, 2.0], name='head/kernel')
  solver = _solver(optimizer=Solver.SGD, warmup_steps=0, sgd_momentum=0.0)
  optimizer = optimizer_lib.build_optimizer(solver, [backbone])
  gradient = tf.constant([0.5, -1.0])
  optimizer.apply_gradients([(gradient, backbone), (gradient, head)])
  # 1 - w in float32 near 1 carries ~1e-4 relative error.
  np.testing.assert_allclose(1.0 - backbone.numpy()[0], 0.1 * 0.01 * 0.5,
                             rtol=1e-3)
  np.testing.assert_allclose(1.0 - head.numpy()[0], 0.01 * 0.5, rtol=1e-3)


def test_l2_regularization_covers_kernels_only():
  kernel = tf.Variable([[1.0, 2.0]], name='conv/kernel')
  bias = tf.Variable([3.0], name='conv/bias')
  solver = _solver(optimizer=Solver.ADAM, weight_decay=0.1)
  value = optimizer_lib.l2_regularization(solver, [kernel, bias])
  np.testing.assert_allclose(float(value), 0.1 * 0.5 * (1 + 4), rtol=1e-6)
  # ADAMW decays decoupled, not through the loss; 0 means off.
  assert optimizer_lib.l2_regularization(
      _solver(optimizer=Solver.ADAMW, weight_decay=0.1), [kernel]) is None
  assert optimizer_lib.l2_regularization(_solver(), [kernel]) is None


def test_float16_gets_loss_scaling():
  optimizer = optimizer_lib.build_optimizer(
      _solver(precision=Solver.MIXED_FLOAT16))
  assert isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
  assert not isinstance(optimizer_lib.build_optimizer(_solver()),
                        tf_keras.mixed_precision.LossScaleOptimizer)

"""Gradient recomputation (cmt.model.layers.recompute): exact gradients, the
same drop-path masks, moving statistics assigned once; on a tiny
CMT-DeepLab under tf.function, XLA and MirroredStrategy."""

import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt.model.layers import norm_act
from cmt.model.layers import recompute
from tests.conftest import REPO_ROOT
from tests.deeplab2_import import conditioning

RELATIVE = 1e-5
LEARNING_RATE = 0.1  # of the step in recompute_check


class _Branch(tf_keras.layers.Layer):
  """Dense -> BatchNorm (optional) -> drop path: a residual branch."""

  def __init__(self, batch_norm=None):
    super().__init__()
    self.dense = tf_keras.layers.Dense(4, use_bias=False)
    self.norm = batch_norm

  def call(self, x, training=False):
    y = self.dense(x)
    if self.norm is not None:
      y = self.norm(y, training=training)
    return norm_act.maybe_drop_path(y, 0.5, training)


def _one_step(branch, x):
  branch(x)  # Build outside recomputation.
  recompute.configure(branch, True)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = recompute.call(branch, x, training=True)
    return y, tape.gradient(y, x)
  return step()


def test_moving_statistics_assigned_once():
  x = tf.random.stateless_normal([16, 4], [1, 2]) + 3.0
  branch = _Branch(recompute.BatchNormalization(momentum=0.5))
  _one_step(branch, x)
  batch_mean = tf.reduce_mean(branch.dense(x), axis=0).numpy()
  np.testing.assert_allclose(branch.norm.moving_mean.numpy(),
                             0.5 * batch_mean, rtol=1e-5)
  # Control: tf_keras' own BatchNorm assigns again in the recomputation.
  plain = _Branch(tf_keras.layers.BatchNormalization(momentum=0.5))
  _one_step(plain, x)
  batch_mean = tf.reduce_mean(plain.dense(x), axis=0).numpy()
  np.testing.assert_allclose(plain.norm.moving_mean.numpy(),
                             0.75 * batch_mean, rtol=1e-5)  # 0.5 + 0.5 * 0.5


def test_recomputation_repeats_the_drop_path_masks():
  x = tf.random.stateless_normal([16, 4], [1, 2])
  y, gradient = _one_step(_Branch(), x)
  # Rows dropped in the forward output get no gradient, kept rows do: the
  # backward pass recomputed the branch with the same masks.
  dropped = np.all(y.numpy() == 0.0, axis=1)
  assert 0 < dropped.sum() < 16
  assert np.all(gradient.numpy()[dropped] == 0.0)
  assert np.all(np.abs(gradient.numpy()[~dropped]).sum(axis=1) > 0)


def _gradient_limit(d, key):
  """Largest allowed |off - on| of one variable's gradient: RELATIVE of its
  own scale plus conditioning.MULTIPLE times the largest change that 1-2 ulp
  of noise on the images makes to it (its float32 conditioning)."""
  off = d[f'off_{key}']
  sensitivity = np.abs(d[f'noisy_{key}'] - off).max()
  return (RELATIVE * np.abs(off).max() +
          conditioning.MULTIPLE * sensitivity)


# Block kinds that `model_options.recompute` switches on in the check, and a
# forward op each must run again in the backward pass: (scope pattern, op).
RECOMPUTED_KINDS = (
    (r'stage[2-4]_block\d+', 'Conv2D'),  # conv blocks
    (r'stage5_block\d+', 'Einsum'),  # axial blocks (dual-path at stage 5)
    (r'\w+_transformer', 'MatMul'),  # transformer layers
    (r'(stride\d+_\w+|transformer_stage\d+_block\d+)', 'Conv2D'),  # decoder
)


def _recomputed(d, name):
  """{(op type, scope): count} of the forward ops run again in backward."""
  return {tuple(key.split(' ')): int(count) for key, count in zip(
      d[f'{name}_recomputed_scopes'], d[f'{name}_recomputed_counts'])}


def _assert_recomputation_ran(d, setting):
  assert not _recomputed(d, 'off'), setting
  on = _recomputed(d, 'on')
  for pattern, op in RECOMPUTED_KINDS:
    assert any(t == op and re.fullmatch(pattern, scope)
               for t, scope in on), (setting, pattern, op, sorted(on))


@pytest.mark.slow
def test_recomputation_gives_the_same_step_on_a_tiny_cmt_deeplab(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'tests.model.recompute_check', str(tmp_path)],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  for setting in ('function', 'xla', 'mirrored'):
    d = np.load(tmp_path / f'{setting}.npz')
    # The step with recomputation runs the recomputed forwards: a wrapper
    # that did not recompute would pass every comparison below.
    _assert_recomputation_ran(d, setting)
    _assert_same_step(d, setting)


def _assert_same_step(d, setting):
  """Loss, gradients, weights and moving statistics after the step agree
  with and without recomputation (`d`: one setting's results)."""
  # Drop path is on and matters: another seed, another loss.
  for name in ('off', 'on'):
    assert abs(float(d[f'{name}_other_seed_loss']) - float(
        d[f'{name}_loss'])) > 1e-4 * abs(float(d['off_loss'])), setting
  assert abs(float(d['on_loss']) - float(d['off_loss'])) <= (
      RELATIVE * abs(float(d['off_loss']))), setting
  limits = _assert_same_gradients(d, setting)
  _assert_same_weights(d, setting, limits)


def _assert_same_gradients(d, setting) -> dict:
  """Gradients with and without recomputation agree; returns each
  gradient's limit."""
  grads = [k[len('off_'):] for k in d.files if k.startswith('off_grad')
           and k != 'off_grad_names']
  assert len(grads) > 100
  # Over all gradients, relative to the largest entry.
  largest = max(np.abs(d[f'off_{k}']).max() for k in grads)
  worst = max(np.abs(d[f'off_{k}'] - d[f'on_{k}']).max() for k in grads)
  assert worst <= RELATIVE * largest, setting
  # Per variable, for every variable whose gradient is not round-off (its
  # largest entry at least 1e-3 of the model's; below, e.g. a BatchNorm
  # beta feeding another BatchNorm, entries are ~1e-8 and differ in their
  # own digits): RELATIVE of its own scale, plus a few times what 1-2 ulp
  # of noise on the images changes it (a gradient summed from cancelling
  # terms, e.g. the reference-embedding bias at 0.2% of the largest, is
  # moved 1e-5 of its own scale by round-off that recomputation reorders).
  # The check is deterministic (op determinism, one intra-op thread,
  # seeded weights): these figures are the same in every run.
  limits = {}
  for key in grads:
    limits[key] = _gradient_limit(d, key)
    if np.abs(d[f'off_{key}']).max() >= 1e-3 * largest:
      difference = np.abs(d[f'off_{key}'] - d[f'on_{key}']).max()
      assert difference <= limits[key], (setting, key, difference,
                                         limits[key])
  return limits


def _assert_same_weights(d, setting, limits):
  """After the step, weights and BatchNorm moving statistics agree (the
  trainable ones within the step's share of their gradient's limit), and
  the moving statistics moved (assigned once in both)."""
  grad_of = {name: f'grad{i}' for i, name in enumerate(d['off_grad_names'])}
  names = list(d['off_weight_names'])
  moving = [i for i, n in enumerate(names) if 'moving_' in n]
  assert len(moving) > 50
  for i, name in enumerate(names):
    off, on = d[f'off_weight{i}'], d[f'on_weight{i}']
    limit = RELATIVE * np.abs(off).max()
    if name in grad_of:
      limit += LEARNING_RATE * limits[grad_of[name]]
    assert np.abs(off - on).max() <= limit, (setting, name)
  for i in moving:
    assert not np.array_equal(d[f'off_weight{i}'], d[f'initial_weight{i}'])

"""Gradient recomputation (cmt.model.layers.recompute): exact gradients, the
same drop-path masks, moving statistics assigned once; on a tiny
CMT-DeepLab under tf.function, XLA and MirroredStrategy."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt.model.layers import norm_act
from cmt.model.layers import recompute
from tests.conftest import REPO_ROOT

RELATIVE = 1e-5


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


def _max_relative(a, b):
  return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


@pytest.mark.slow
def test_recomputation_gives_the_same_step_on_a_tiny_cmt_deeplab(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'tests.model.recompute_check', str(tmp_path)],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  for setting in ('function', 'xla', 'mirrored'):
    d = np.load(tmp_path / f'{setting}.npz')
    # Drop path is on and matters: another seed, another loss.
    for name in ('off', 'on'):
      assert abs(float(d[f'{name}_other_seed_loss']) - float(
          d[f'{name}_loss'])) > 1e-4 * abs(float(d['off_loss'])), setting
    assert abs(float(d['on_loss']) - float(d['off_loss'])) <= (
        RELATIVE * abs(float(d['off_loss']))), setting
    grads = [k[len('off_'):] for k in d.files if k.startswith('off_grad')]
    assert len(grads) > 100
    # Over all gradients, relative to the largest entry; and per variable
    # for every variable whose gradient is not round-off (its largest entry
    # at least 1e-2 of the model's; below, e.g. a BatchNorm beta feeding
    # another BatchNorm, entries are ~1e-8 and differ in their own digits,
    # and one at 0.4% of the largest differed by 3.6e-6 of its own scale in
    # one run and 1.1e-5 in another of the same code: thread-order round-off
    # under mirrored all-reduces, not recomputation).
    largest = max(np.abs(d[f'off_{k}']).max() for k in grads)
    worst = max(np.abs(d[f'off_{k}'] - d[f'on_{k}']).max() for k in grads)
    assert worst <= RELATIVE * largest, setting
    for key in grads:
      if np.abs(d[f'off_{key}']).max() >= 1e-2 * largest:
        assert _max_relative(d[f'off_{key}'], d[f'on_{key}']) <= RELATIVE, (
            setting, key)
    # After the step: weights and BatchNorm moving statistics agree, and the
    # moving statistics moved (assigned once in both).
    names = list(d['off_weight_names'])
    moving = [i for i, n in enumerate(names) if 'moving_' in n]
    assert len(moving) > 50
    for i, name in enumerate(names):
      assert _max_relative(d[f'off_weight{i}'], d[f'on_weight{i}']) <= (
          RELATIVE), (setting, name)
    for i in moving:
      assert not np.array_equal(d[f'off_weight{i}'], d[f'initial_weight{i}'])

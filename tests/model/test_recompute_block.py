"""Recomputation as a block's constructor argument (`recompute.Block`):
calling a block always runs through `recompute.call`."""

import pytest
import tensorflow as tf
import tf_keras

from cmt.model.layers import norm_act
from cmt.model.layers import recompute


class _Probe(recompute.Block):
  """Dense -> drop path; notes whether each forward is a recomputation."""

  def __init__(self, inner=None, **kwargs):
    super().__init__(**kwargs)
    self.dense = tf_keras.layers.Dense(4, use_bias=False)
    self.inner = inner
    self.recomputing = []

  def call(self, x, training=False):
    self.recomputing.append(recompute.is_recomputing())
    y = self.dense(x)
    if self.inner is not None:
      y = self.inner(y, training=training)
    return x + norm_act.maybe_drop_path(y, 0.5, training)


def _gradient_step(block, x):
  block(x)  # Built outside recomputation.

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = block(x, training=True)  # A plain call: no recompute.call.
    return y, tape.gradient(y, x)
  return step()


@pytest.mark.parametrize('enabled', [True, False])
def test_a_block_call_recomputes_as_constructed(enabled):
  x = tf.random.stateless_normal([16, 4], [1, 2])
  block = _Probe(recompute=enabled)
  assert recompute.is_recomputed(block) == enabled
  y, gradient = _gradient_step(block, x)
  assert (True in block.recomputing) == enabled
  # The recomputed forward dropped the rows the forward dropped: the
  # residual branch of a dropped row adds nothing to the output.
  branch = (y - x).numpy()
  dropped = (branch == 0).all(axis=1)
  assert 0 < dropped.sum() < 16
  assert gradient.shape == x.shape


def test_blocks_do_not_nest():
  x = tf.ones([2, 4])
  outer = _Probe(inner=_Probe())
  outer(x)
  with pytest.raises(RuntimeError, match='inside another block'):
    outer(x, training=True)

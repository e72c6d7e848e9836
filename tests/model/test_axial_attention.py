"""Axial attention against a numpy reference of Axial-DeepLab's formula."""

import numpy as np
import pytest
import tensorflow as tf

from cmt.model.layers import axial_attention
from cmt.model.layers import norm_act
from tests.model import helpers


def test_relative_distance_index_is_key_minus_query():
  index = axial_attention.relative_distance_index(4)
  expected = (np.arange(4)[None, :] - np.arange(4)[:, None] +
              axial_attention.MAX_SPAN - 1)
  np.testing.assert_array_equal(index, expected)


def _reference(layer, x):
  """Numpy axial attention along axis 1 (BatchNorms in inference mode)."""
  heads = layer._num_heads
  dk, dv = layer._key_depth // heads, layer._value_depth // heads
  length = x.shape[1]
  qkv = helpers.batch_norm_numpy(x @ layer.qkv_kernel.numpy(),
                                 layer._qkv_norm, [2])
  q, k, v = np.split(qkv, [layer._key_depth, 2 * layer._key_depth], axis=-1)
  q = q.reshape(-1, length, heads, dk)
  k = k.reshape(-1, length, heads, dk)
  v = v.reshape(-1, length, heads, dv)
  i, j = np.meshgrid(np.arange(length), np.arange(length), indexing='ij')
  offset = j - i + axial_attention.MAX_SPAN - 1  # relative distance j - i
  r_q = layer._query_rpe.embeddings.numpy()[offset]  # [L, L, dk]
  r_k = layer._key_rpe.embeddings.numpy()[offset]
  r_v = layer._value_rpe.embeddings.numpy()[offset]
  similarity = np.stack([
      np.einsum('bihd,bjhd->bhij', q, k),
      np.einsum('bihd,ijd->bhij', q, r_q),
      np.einsum('bjhd,ijd->bhij', k, r_k)])
  similarity = helpers.batch_norm_numpy(similarity, layer._similarity_norm,
                                        [0, 2]).sum(0)
  weights = helpers.softmax(similarity, axis=-1)
  retrieved = np.stack([np.einsum('bhij,bjhd->bhid', weights, v),
                        np.einsum('bhij,ijd->bhid', weights, r_v)])
  retrieved = helpers.batch_norm_numpy(retrieved, layer._retrieval_norm,
                                       [0, 2, 4]).sum(0)
  return retrieved.transpose(0, 2, 1, 3).reshape(-1, length, heads * dv)


def test_axial_attention_1d_matches_numpy():
  layer = axial_attention.AxialAttention1D(
      key_depth=4, value_depth=8, num_heads=2, name='axis',
      norm=norm_act.NormConfig())
  x = np.random.default_rng(1).normal(size=(3, 5, 6)).astype(np.float32)
  layer(x)
  helpers.randomise_batch_norms(layer)
  np.testing.assert_allclose(layer(x, training=False).numpy(),
                             _reference(layer, x), rtol=1e-4, atol=1e-5)


def test_axial_attention_2d_is_height_then_width():
  layer = axial_attention.AxialAttention2D(
      filters=4, name='attention', norm=norm_act.NormConfig(), num_heads=2,
      strides=2)
  x = np.random.default_rng(2).normal(size=(2, 5, 7, 6)).astype(np.float32)
  y = layer(x, training=False).numpy()
  assert y.shape == (2, 3, 4, 8)
  helpers.randomise_batch_norms(layer)
  y = layer(x, training=False).numpy()
  # Height pass over every column, subsample rows, width pass over each row.
  height = _reference(layer._height_axis,
                      x.transpose(0, 2, 1, 3).reshape(-1, 5, 6))
  height = height.reshape(2, 7, 5, 8).transpose(0, 2, 1, 3)[:, ::2]
  width = _reference(layer._width_axis, height.reshape(-1, 7, 8))
  expected = width.reshape(2, 3, 7, 8)[:, :, ::2]
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_axis_longer_than_query_region_is_refused():
  layer = axial_attention.AxialAttention1D(4, 8, 2, 'axis',
                                           norm_act.NormConfig(),
                                           query_region=3)
  with pytest.raises(ValueError, match='axial_query_region=3'):
    layer(tf.zeros([1, 5, 6]))

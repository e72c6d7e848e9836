"""Eq. 3 and Eq. 5-8 against numpy references, softmax axes included."""

import numpy as np
import tensorflow as tf

from cmt.model.layers import attention_ops
from tests.model.helpers import softmax

RNG = np.random.default_rng(0)
B, P, N, H, D = 2, 6, 4, 2, 3  # batch, pixels, centers, heads, per-head


def _normal(*shape):
  return RNG.normal(size=shape).astype(np.float32)


def _cross_attention(center_query, pixel_key, pixel_value):
  """Eq. 3 without the residual, as the layers compose it from the ops:
  [B, N, h, d], [B, P, h, d], [B, P, h, dv] -> [B, h, N, dv]."""
  weights = attention_ops.multihead_attention_weights(center_query,
                                                      [pixel_key])
  return attention_ops.retrieve(weights, [pixel_value])


def test_cross_attention_eq3_softmax_over_pixels():
  q_c, k_p, v_p = _normal(B, N, H, D), _normal(B, P, H, D), _normal(B, P, H, 5)
  got = _cross_attention(q_c, k_p, v_p).numpy()
  for h in range(H):
    # Eq. 3 per head: softmax_HW(Q^c K^p^T) V^p, [N, P] rows sum over P.
    weights = softmax(np.einsum('bnd,bpd->bnp', q_c[:, :, h], k_p[:, :, h]),
                      axis=2)
    np.testing.assert_allclose(got[:, h],
                               np.einsum('bnp,bpd->bnd', weights, v_p[:, :, h]),
                               rtol=1e-5, atol=1e-6)


def test_memory_attention_softmax_spans_pixels_and_centers():
  q_c, k_p, k_c = _normal(B, N, H, D), _normal(B, P, H, D), _normal(B, N, H, D)
  weights = attention_ops.multihead_attention_weights(q_c, [k_p, k_c]).numpy()
  logits = np.concatenate([np.einsum('bnhd,bphd->bhnp', q_c, k_p),
                           np.einsum('bnhd,bmhd->bhnm', q_c, k_c)], axis=-1)
  np.testing.assert_allclose(weights, softmax(logits, -1), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_assignment_eq6_residual_and_softmax_over_centers():
  k_p, q_c, s = _normal(B, P, 6), _normal(B, N, 6), _normal(B, P, N)
  logits = attention_ops.assignment_logits(k_p, q_c, s).numpy()
  np.testing.assert_allclose(logits, s + np.einsum('bpd,bnd->bpn', k_p, q_c),
                             rtol=1e-5, atol=1e-5)
  z = attention_ops.assignment(logits).numpy()
  np.testing.assert_allclose(z, softmax(logits, axis=2), rtol=1e-5, atol=1e-6)
  # Each pixel distributes one unit over the N centers, not over pixels.
  np.testing.assert_allclose(z.sum(axis=2), 1.0, rtol=1e-5)
  assert not np.allclose(z.sum(axis=1), 1.0)
  without_residual = attention_ops.assignment_logits(k_p, q_c).numpy()
  np.testing.assert_allclose(logits - without_residual, s, rtol=1e-4,
                             atol=1e-5)


def test_clustering_center_update_eq5_eq7():
  k_p, q_c, v_p = _normal(B, P, 6), _normal(B, N, 6), _normal(B, P, 5)
  z = softmax(np.einsum('bpd,bnd->bpn', k_p, q_c), axis=2)
  # Eq. 5: (softmax_N(K~^p Q~^c^T))^T V^p.
  got = attention_ops.clustering_center_update(tf.constant(z), v_p).numpy()
  np.testing.assert_allclose(got, np.einsum('bpn,bpd->bnd', z, v_p),
                             rtol=1e-5, atol=1e-5)
  # Eq. 7: (softmax_HW(Q^c K^p^T) + Z^T) V^p for a single head.
  q1, k1 = _normal(B, N, 1, 6), _normal(B, P, 1, 6)
  cross = _cross_attention(q1, k1, v_p[:, :, None]).numpy()[:, 0]
  combined = cross + got
  attention = softmax(np.einsum('bnd,bpd->bnp', q1[:, :, 0], k1[:, :, 0]), 2)
  expected = np.einsum('bnp,bpd->bnd', attention + z.transpose(0, 2, 1), v_p)
  np.testing.assert_allclose(combined, expected, rtol=1e-4, atol=1e-5)


def test_clustering_pixel_update_eq8():
  z = softmax(_normal(B, P, N), axis=2)
  v_c = _normal(B, N, 5)
  got = attention_ops.clustering_pixel_update(tf.constant(z), v_c).numpy()
  np.testing.assert_allclose(got, np.einsum('bpn,bnd->bpd', z, v_c),
                             rtol=1e-5, atol=1e-5)


def test_split_and_merge_heads_round_trip():
  x = _normal(B, P, H * D)
  split = attention_ops.split_heads(x, H)
  assert split.shape == (B, P, H, D)
  merged = attention_ops.merge_heads(tf.transpose(split, [0, 2, 1, 3]))
  np.testing.assert_array_equal(merged.numpy(), x)

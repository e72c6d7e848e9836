"""The dual-path / clustering mask transformer layer: Eq. 3 (center update)
against numpy through the whole layer, the Eq. 6 residual path, Eq. 9-12."""

import numpy as np
import pytest
import tensorflow as tf

from cmt.model.layers import dual_path_transformer as dpt
from cmt.model.layers import norm_act
from tests.model import helpers

B, H, W, CP, N, CM = 2, 3, 4, 12, 5, 8


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  pixels = rng.normal(size=(B, H, W, CP)).astype(np.float32)
  centers = rng.normal(size=(B, N, CM)).astype(np.float32)
  return pixels, centers


def _layer(**switches):
  return dpt.ClusteringMaskTransformerLayer(
      'layer', norm_act.NormConfig(), 'relu', filters=CM // 2, num_heads=2,
      feed_forward_channels=16, **switches)


def _built(pixels, centers, embedding=None, **switches):
  layer = _layer(**switches)
  layer((pixels, centers, None, embedding))
  helpers.randomise_batch_norms(layer)
  return layer


def _dense(layer, x, activation=True):
  """A Dense1DNormAct in numpy (inference BatchNorm, ReLU)."""
  y = helpers.batch_norm_numpy(x @ layer._dense.kernel.numpy(), layer._norm,
                               [x.ndim - 1])
  return np.maximum(y, 0) if activation else y


def test_center_update_eq3_matches_numpy():
  pixels, centers = _inputs()
  layer = _built(pixels, centers)
  got = layer((pixels, centers, None, None), training=False,
              figure_outputs=True)
  relu = lambda x: np.maximum(x, 0)
  heads, dk, dv = 2, CM // 2 // 2, CM  # keys: filters; values: 2 filters
  flat = pixels.reshape(B, H * W, CP)
  c = _dense(layer._center_conv1, centers)
  p = _dense(layer._pixel_conv1, relu(flat))
  q_c, k_c, v_c = np.split(_dense(layer._center_qkv, c, False),
                           [CM // 2, CM], -1)
  _, k_p, v_p = np.split(_dense(layer._pixel_qkv, p, False), [CM // 2, CM], -1)
  split = lambda x, d: x.reshape(B, -1, heads, d)
  keys = np.concatenate([split(k_p, dk), split(k_c, dk)], 1)
  values = np.concatenate([split(v_p, dv // heads), split(v_c, dv // heads)],
                          1)
  logits = np.einsum('bnhd,bkhd->bhnk', split(q_c, dk), keys)
  logits = helpers.batch_norm_numpy(logits, layer._center_similarity_norm, [1])
  # Eq. 3 (MaX-DeepLab: the softmax spans the HW pixels and the N centers).
  weights = helpers.softmax(logits, axis=-1)
  retrieved = np.einsum('bhnk,bkhd->bhnd', weights, values)
  retrieved = helpers.batch_norm_numpy(retrieved,
                                       layer._center_retrieval_norm, [1, 3])
  update = relu(retrieved.transpose(0, 2, 1, 3).reshape(B, N, dv))
  c_hat = relu(centers + _dense(layer._center_conv3, update, False))
  ffn = _dense(layer._ffn2, _dense(layer._ffn1, c_hat), False)
  np.testing.assert_allclose(got.centers.numpy(), relu(c_hat + ffn),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      got.cross_attention.numpy(), weights[..., :H * W].mean(1), rtol=1e-5,
      atol=1e-6)
  assert got.assignment_logits is None and got.reference_embedding is None
  # Training and evaluation steps skip the figures' map.
  assert layer((pixels, centers, None, None)).cross_attention is None


def test_fresh_layer_keeps_pixels_identity():
  pixels, centers = _inputs()
  out = _layer(clustering_update=True)((pixels, centers, None, None))
  # Output projections start with gamma = 0: the pixel path is an identity.
  np.testing.assert_allclose(out.pixels.numpy(), pixels, atol=1e-6)


def test_assignment_logits_carry_the_previous_layer_eq6():
  pixels, centers = _inputs()
  layer = _built(pixels, centers, clustering_update=True)
  s = np.random.default_rng(3).normal(size=(B, H * W, N)).astype(np.float32)
  first = layer((pixels, centers, None, None), training=False)
  second = layer((pixels, centers, s, None), training=False,
                 figure_outputs=True)
  np.testing.assert_allclose(
      second.assignment_logits.numpy() - first.assignment_logits.numpy(), s,
      rtol=1e-4, atol=1e-4)
  # Fig. 1's attention is Eq. 3's softmax alone (Z^T, whose rows sum to a
  # soft mask area, is not added): each center's pixel weights are part of
  # one softmax over the P pixels and N centers.
  attention = second.cross_attention.numpy()
  assert attention.min() >= 0.0
  assert attention.sum(-1).max() <= 1.0 + 1e-5


def test_reference_mask_eq9_eq10():
  pixels, centers = _inputs()
  e = np.random.default_rng(4).normal(size=(B, N, 16)).astype(np.float32)
  layer = _built(pixels, centers, e, reference_mask=True)
  out = layer((pixels, centers, None, e), training=False)
  mlp = layer._reference_mlp(out.centers, training=False).numpy()
  # Eq. 9: e_hat = e + MLP(C), the skip connection on e.
  np.testing.assert_allclose(out.reference_embedding.numpy(), e + mlp,
                             rtol=1e-5, atol=1e-5)
  # Eq. 10: r^c = sigmoid(e_hat), first M entries are h, last M are w.
  points = dpt.reference_points(out.reference_embedding).numpy()
  r = 1 / (1 + np.exp(-(e + mlp)))
  assert points.shape == (B, N, 8, 2)
  np.testing.assert_allclose(points[..., 0], r[..., :8], rtol=1e-5)
  np.testing.assert_allclose(points[..., 1], r[..., 8:], rtol=1e-5)
  assert points.min() >= 0.0 and points.max() <= 1.0


def test_pixel_coordinates_eq12():
  r_p = dpt.pixel_coordinates(3, 5)
  assert r_p.shape == (15, 2)
  np.testing.assert_allclose(r_p[7], [0.5, 0.5])  # row 1, column 2
  np.testing.assert_allclose(r_p[4], [0.0, 1.0])  # row 0, column 4
  np.testing.assert_allclose(r_p[-1], [1.0, 1.0])


@pytest.mark.parametrize('coord_conv', [False, True])
def test_coord_conv_eq11_feeds_reference_mask_to_the_layer(coord_conv):
  pixels, centers = _inputs()
  rng = np.random.default_rng(5)
  e1, e2 = (rng.normal(size=(B, N, 16)).astype(np.float32) for _ in range(2))
  layer = _built(pixels, centers, e1, reference_mask=True,
                 coord_conv=coord_conv)
  out1 = layer((pixels, centers, None, e1), training=False)
  out2 = layer((pixels, centers, None, e2), training=False)
  differs = not np.allclose(out1.centers.numpy(), out2.centers.numpy())
  # Only the coord-conv lets r^c = sigmoid(e) change the cluster centers.
  assert differs == coord_conv

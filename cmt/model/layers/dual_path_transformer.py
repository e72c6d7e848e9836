"""The dual-path transformer layer of MaX-DeepLab with the Clustering Mask
Transformer switches of CMT-DeepLab (Sec. 3.3).

One layer reads pixel features F [B, H, W, Cp] (pre-activation, from the
axial block before it) and cluster centers C [B, N, Cm] (the memory), and
returns updated F and C. All projections are bias-free 1x1 convolutions with
BatchNorm; output projections start with gamma = 0 so a fresh layer is an
identity.

MaX-DeepLab (all CMT switches off):
  * center update, Eq. 3: C <- C + softmax(Q^c [K^p; K^c]^T) [V^p; V^c], one
    softmax over all HW pixels and all N centers (memory-to-pixel
    cross-attention and memory self-attention in one);
  * center FFN: C <- act(C + FFN(C));
  * pixel-to-memory feedback: F <- F + softmax_N(Q^p (K^c)^T) V^c.

CMT switches (`model_options.clustering`):
  * clustering_update: assignment logits S_l = S_{l-1} + K^p (Q^c)^T (Eq. 6,
    S carried from the previous layer), Z = softmax_N(S_l); the center update
    adds Z^T V^p (Eq. 7) and the pixel update adds Z V^c (Eq. 8). K~^p and
    Q~^c of Eq. 6 reuse this layer's pixel keys and center queries (with a
    BatchNorm of their own): the paper reports the same parameter count with
    and without the clustering update (61.9M / 91.0M, Table 2c), which
    leaves no room for further projections.
  * reference_mask (Eq. 9-10): e_hat = e + MLP(C_out), r^c = sigmoid(e_hat),
    e carried from layer to layer.
  * coord_conv (Eq. 11-12): at the start of the layer the center and pixel
    features entering the attention projections are
    Conv(Concat(C, r^c)) and Conv(Concat(F, r^p)), r^p the fixed [0, 1]
    pixel coordinates.

Reading of the paper for the parameter counts (Table 2c). The paper gives
no widths for the reference-mask MLP or the coord-convs; the location
switches add 3.6M to MaX-S (4 transformer layers) and 3.9M to the
stronger-decoder model (6 layers). Here the MLP is 256 -> 2048 (the FFN
width, BN, act) -> 2M, and both coord-convs are separate 1x1 conv + BN +
act layers at the bottleneck width (256 + 2M -> 256 for centers, 256 + 2
-> 256 for pixels), about 0.70M per layer: CMT-DeepLab (94.9M) comes out
at +0.3%, R104 +0.2%, R104-RFN +0.1%, the location-only MaX-S row -1.2%.
A coord-conv at the full pixel width (2048 + 2 -> 2048, 4.2M per layer)
would overshoot every row by far.
"""

from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from cmt.model.layers import attention_ops
from cmt.model.layers import norm_act
from cmt.model.layers import recompute as recompute_lib


class DualPathOutput(NamedTuple):
  pixels: tf.Tensor  # [B, H, W, Cp] pre-activation.
  centers: tf.Tensor  # [B, N, Cm].
  # [B, HW, N] assignment logits S of Eq. 6 (None without clustering_update).
  assignment_logits: Optional[tf.Tensor]
  # [B, N, 2M] reference-mask embedding e_hat of Eq. 9 (None without
  # reference_mask); first M entries are h, the last M are w.
  reference_embedding: Optional[tf.Tensor]
  # [B, N, HW] head-averaged center-to-pixel weights of Eq. 3's softmax
  # (alone: the clustering assignment Z travels as its logits above), for
  # Fig. 1; None unless `figure_outputs`.
  cross_attention: Optional[tf.Tensor]


class _QueriesKeysValues(NamedTuple):
  """Queries, keys and values of the centers ([B, N, .]) and of the pixels
  ([B, HW, .]): keys and queries key_depth wide, values value_depth."""
  q_c: tf.Tensor
  k_c: tf.Tensor
  v_c: tf.Tensor
  q_p: tf.Tensor
  k_p: tf.Tensor
  v_p: tf.Tensor


def pixel_coordinates(height: int, width: int) -> np.ndarray:
  """r^p of Eq. 12: [HW, 2] (h, w) coordinates of each pixel in [0, 1]."""
  hs = np.linspace(0.0, 1.0, height) if height > 1 else np.zeros(1)
  ws = np.linspace(0.0, 1.0, width) if width > 1 else np.zeros(1)
  grid_h, grid_w = np.meshgrid(hs, ws, indexing='ij')
  return np.stack([grid_h.ravel(), grid_w.ravel()], axis=-1).astype(np.float32)


class ClusteringMaskTransformerLayer(recompute_lib.Block):
  """MaX-DeepLab's dual-path transformer layer with CMT's clustering update,
  reference masks and coord-conv as switches (see the module docstring).

  Args:
    filters: base width (MaX: 128 = 128 x transformer expansion); bottleneck
      2x, keys 1x, values 2x.
    feed_forward_channels: hidden width of the center FFN (MaX: 2048).
    clustering_update, reference_mask, coord_conv, num_reference_points: the
      `model_options.clustering` switches.
    drop_rate: stochastic-depth rate of each residual branch.
    recompute: run the forward again in the backward pass
      (`recompute_lib.Block`).
  """

  def __init__(self, name: str, norm: norm_act.NormConfig, activation,
               filters: int = 128, num_heads: int = 8,
               feed_forward_channels: int = 2048,
               clustering_update: bool = False, reference_mask: bool = False,
               coord_conv: bool = False, num_reference_points: int = 8,
               drop_rate: float = 0.0, recompute: bool = False):
    super().__init__(name=name, recompute=recompute)
    # coord_conv without reference_mask and widths the heads do not divide
    # are refused by `model_checks` (run by `builder.build_model`).
    self._bottleneck = 2 * filters
    self._key_depth = filters
    self._value_depth = 2 * filters
    self._num_heads = num_heads
    self._ffn_channels = feed_forward_channels
    self._clustering_update = clustering_update
    self._reference_mask = reference_mask
    self._coord_conv = coord_conv
    self._num_points = num_reference_points
    self._drop_rate = drop_rate
    self._norm = norm
    self._activation_name = activation
    self._activation = norm_act.get_activation(activation)
    qkv = 2 * self._key_depth + self._value_depth
    std = self._bottleneck ** -0.5
    self._center_conv1 = norm_act.Dense1DNormAct(
        self._bottleneck, 'memory_conv1_bn_act', norm, activation)
    self._pixel_conv1 = norm_act.Dense1DNormAct(
        self._bottleneck, 'pixel_conv1_bn_act', norm, activation)
    if coord_conv:
      self._center_coord_conv = norm_act.Dense1DNormAct(
          self._bottleneck, 'memory_coord_conv_bn_act', norm, activation)
      self._pixel_coord_conv = norm_act.Dense1DNormAct(
          self._bottleneck, 'pixel_coord_conv_bn_act', norm, activation)
    self._center_qkv = norm_act.Dense1DNormAct(
        qkv, 'memory_qkv_conv_bn', norm, None,
        kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=std))
    self._pixel_qkv = norm_act.Dense1DNormAct(
        qkv, 'pixel_qkv_conv_bn', norm, None,
        kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=std))
    # Similarity BatchNorms: one (gamma, beta) per head; retrieval BatchNorms
    # per head and channel.
    self._center_similarity_norm = norm('memory_similarity_bn', axis=1)
    self._center_retrieval_norm = norm('memory_retrieved_bn', axis=[1, 3])
    self._pixel_similarity_norm = norm('pixel_similarity_bn', axis=1)
    self._pixel_retrieval_norm = norm('pixel_retrieved_bn', axis=[1, 3])
    if clustering_update:
      self._assignment_norm = norm_act.ScalarBatchNorm('assignment_bn', norm)
      self._center_clustering_norm = norm('memory_clustering_bn')
      self._pixel_clustering_norm = norm('pixel_clustering_bn')

  def build(self, input_shape):
    pixel_channels = input_shape[0][-1]
    center_channels = input_shape[1][-1]
    norm = self._norm
    self._center_conv3 = norm_act.Dense1DNormAct(
        center_channels, 'memory_conv3_bn', norm, None,
        gamma_initializer='zeros')
    self._ffn1 = norm_act.Dense1DNormAct(
        self._ffn_channels, 'memory_ffn_conv1_bn_act', norm,
        self._activation_name)
    self._ffn2 = norm_act.Dense1DNormAct(
        center_channels, 'memory_ffn_conv2_bn', norm, None,
        gamma_initializer='zeros')
    self._pixel_conv3 = norm_act.Dense1DNormAct(
        pixel_channels, 'pixel_conv3_bn', norm, None,
        gamma_initializer='zeros')
    if self._reference_mask:
      self._reference_mlp = ReferenceMaskMLP(
          self._ffn_channels, 2 * self._num_points, 'reference_mask_mlp',
          norm, self._activation_name)

  def call(self, inputs, training=False, figure_outputs=False):
    """inputs: (pixels, centers, assignment_logits or None, reference
    embedding e or None). Returns a `DualPathOutput`; its cross_attention
    only with `figure_outputs` (the figures need it, training does not)."""
    pixels_in, centers_in, previous_logits, embedding = inputs
    _, height, width, pixel_channels = pixels_in.shape
    features = tf.reshape(pixels_in, [-1, height * width, pixel_channels])
    qkv = self._queries_keys_values(features, centers_in, embedding,
                                    (height, width), training)
    center_update, cross_attention = self._memory_attention(  # Eq. 3
        qkv, training, figure_outputs)
    logits = assignment = None
    if self._clustering_update:
      logits, assignment, clustering = self._clustering_center_update(
          qkv, previous_logits, training)
      center_update += clustering  # Eq. 7
    centers_out = self._center_residual_and_ffn(centers_in, center_update,
                                                training)
    pixels_out = self._pixel_update(features, qkv, assignment, training)
    pixels_out = tf.reshape(pixels_out, [-1, height, width, pixel_channels])

    if self._reference_mask:
      if embedding is None:
        raise ValueError(f'{self.name}: reference_mask needs the embedding e '
                         'of the previous stage')
      embedding = embedding + self._reference_mlp(centers_out,
                                                  training=training)  # Eq. 9
    return DualPathOutput(pixels_out, centers_out, logits,
                          embedding if self._reference_mask else None,
                          cross_attention)

  def _queries_keys_values(self, features, centers_in, embedding, size,
                           training) -> _QueriesKeysValues:
    """Bottleneck projections of centers and pixels, then their queries,
    keys and values; with coord_conv (Eq. 11-12) the coordinates r^c =
    sigmoid(e) and r^p join the features before the q/k/v projections."""
    centers = self._center_conv1(centers_in, training=training)
    pixels = self._pixel_conv1(self._activation(features), training=training)
    if self._coord_conv:
      if embedding is None:
        raise ValueError(f'{self.name}: coord_conv needs the reference '
                         'embedding e of the previous stage')
      r_c = tf.sigmoid(embedding)
      centers = self._center_coord_conv(
          tf.concat([centers, tf.cast(r_c, centers.dtype)], -1),
          training=training)
      r_p = tf.cast(pixel_coordinates(*size), pixels.dtype)
      r_p = tf.tile(r_p[None], [tf.shape(pixels)[0], 1, 1])
      pixels = self._pixel_coord_conv(tf.concat([pixels, r_p], -1),
                                      training=training)
    split = [self._key_depth, self._key_depth, self._value_depth]
    q_c, k_c, v_c = tf.split(self._center_qkv(centers, training=training),
                             split, -1)
    q_p, k_p, v_p = tf.split(self._pixel_qkv(pixels, training=training),
                             split, -1)
    return _QueriesKeysValues(q_c, k_c, v_c, q_p, k_p, v_p)

  def _memory_attention(self, qkv: _QueriesKeysValues, training,
                        figure_outputs):
    """Center update of Eq. 3: softmax(Q^c [K^p; K^c]^T) [V^p; V^c], one
    softmax over the HW pixels and the N centers (MaX). Returns the update
    and, with `figure_outputs`, the head-averaged center-to-pixel weights."""
    heads = self._num_heads
    weights = attention_ops.multihead_attention_weights(
        attention_ops.split_heads(qkv.q_c, heads),
        [attention_ops.split_heads(qkv.k_p, heads),
         attention_ops.split_heads(qkv.k_c, heads)],
        lambda x: self._center_similarity_norm(x, training=training))
    retrieved = attention_ops.retrieve(
        weights, [attention_ops.split_heads(qkv.v_p, heads),
                  attention_ops.split_heads(qkv.v_c, heads)])
    center_update = attention_ops.merge_heads(
        self._center_retrieval_norm(retrieved, training=training))
    cross_attention = None
    if figure_outputs:
      num_pixels = qkv.k_p.shape[1]
      cross_attention = tf.reduce_mean(weights[..., :num_pixels], axis=1)
    return center_update, cross_attention

  def _clustering_center_update(self, qkv: _QueriesKeysValues,
                                previous_logits, training):
    """Eq. 6: S_l = S_{l-1} + K^p (Q^c)^T and Z = softmax_N(S_l); Eq. 7: the
    clustering term Z^T V^p (of Eq. 5) that joins the center update.
    Returns (S_l, Z, the normalised clustering term)."""
    logits = attention_ops.assignment_logits(
        qkv.k_p, qkv.q_c, previous_logits,
        lambda x: self._assignment_norm(x, training=training))
    assignment = attention_ops.assignment(logits)
    clustering = self._center_clustering_norm(
        attention_ops.clustering_center_update(assignment, qkv.v_p),
        training=training)
    return logits, assignment, clustering

  def _center_residual_and_ffn(self, centers_in, center_update, training):
    """C <- act(C + conv3(act(update))), then the center FFN
    C <- act(C + FFN(C)); each residual branch with drop-path."""
    center_update = self._center_conv3(self._activation(center_update),
                                       training=training)
    centers_out = self._activation(
        centers_in + norm_act.maybe_drop_path(center_update, self._drop_rate,
                                              training))
    ffn = self._ffn2(self._ffn1(centers_out, training=training),
                     training=training)
    return self._activation(
        centers_out + norm_act.maybe_drop_path(ffn, self._drop_rate, training))

  def _pixel_update(self, features, qkv: _QueriesKeysValues, assignment,
                    training):
    """Pixel-to-memory feedback F + softmax_N(Q^p (K^c)^T) V^c, plus Z V^c
    with the clustering update (Eq. 8); [B, HW, Cp] pre-activation."""
    heads = self._num_heads
    pixel_weights = attention_ops.multihead_attention_weights(
        attention_ops.split_heads(qkv.q_p, heads),
        [attention_ops.split_heads(qkv.k_c, heads)],
        lambda x: self._pixel_similarity_norm(x, training=training))
    pixel_update = attention_ops.merge_heads(self._pixel_retrieval_norm(
        attention_ops.retrieve(pixel_weights,
                               [attention_ops.split_heads(qkv.v_c, heads)]),
        training=training))
    if assignment is not None:
      pixel_update += self._pixel_clustering_norm(
          attention_ops.clustering_pixel_update(assignment, qkv.v_c),
          training=training)
    pixel_update = self._pixel_conv3(self._activation(pixel_update),
                                     training=training)
    return features + norm_act.maybe_drop_path(pixel_update, self._drop_rate,
                                               training)


class ReferenceMaskMLP(tf_keras.layers.Layer):
  """The MLP of Eq. 9: 1x1 conv to `hidden` channels (BN, act), then a biased
  linear layer to 2M coordinates (logits of r^c)."""

  def __init__(self, hidden: int, outputs: int, name: str,
               norm: norm_act.NormConfig, activation):
    super().__init__(name=name)
    self._hidden = norm_act.Dense1DNormAct(hidden, 'hidden_bn_act', norm,
                                           activation)
    self._output = tf_keras.layers.Dense(
        outputs, kernel_initializer=tf_keras.initializers.TruncatedNormal(
            stddev=0.01), name='output')

  def call(self, centers, training=False):
    return self._output(self._hidden(centers, training=training))


def reference_points(embedding: tf.Tensor) -> tf.Tensor:
  """Eq. 10: r^c = sigmoid(e_hat) as [B, N, M, 2] (h, w) points in [0, 1]."""
  batch_points = embedding.shape[-1] // 2
  r = tf.sigmoid(tf.cast(embedding, tf.float32))
  r = tf.reshape(r, [-1, embedding.shape[1], 2, batch_points])
  return tf.transpose(r, [0, 1, 3, 2])

"""Axial attention with relative positional encodings (Axial-DeepLab).

A 2D self-attention factorised into a height pass and a width pass. For one
axis of length L, head h, query position i and key position j:

  logits_h(i, j) = BN_content(q_i . k_j) + BN_query(q_i . r^q_{j-i})
                   + BN_key(k_j . r^k_{j-i})                      (similarity)
  a_h(i, .)      = softmax_j(logits_h(i, .))
  y_h(i)         = BN_value(sum_j a_h(i, j) v_j)
                   + BN_value_rpe(sum_j a_h(i, j) r^v_{j-i})     (retrieval)

with q, k, v from one bias-free projection followed by BatchNorm. Each
similarity / retrieval term has its own BatchNorm per head (and per channel
for the retrievals), the "similarity BatchNorm" of Axial-DeepLab and
MaX-DeepLab. Relative encodings r are learned per distance, shared by all
heads, for distances up to +-(MAX_SPAN - 1).
"""

import numpy as np
import tensorflow as tf
import tf_keras

from cmt.model.layers import norm_act

# Relative distances beyond this share the outermost embedding.
MAX_SPAN = 255


def relative_distance_index(length: int) -> np.ndarray:
  """[L, L] int32 table: entry (i, j) indexes the embedding of distance j - i."""
  positions = np.arange(length)
  distance = positions[None, :] - positions[:, None]
  return np.clip(distance + MAX_SPAN - 1, 0, 2 * MAX_SPAN - 2).astype(np.int32)


class RelativePositionalEncoding(tf_keras.layers.Layer):
  """Learned embedding per relative distance; `table(L)` gathers [L, L, d]."""

  def __init__(self, depth: int, name: str, stddev: float = 1.0):
    super().__init__(name=name)
    self.embeddings = self.add_weight(
        name='embeddings', shape=(2 * MAX_SPAN - 1, depth),
        initializer=tf_keras.initializers.TruncatedNormal(stddev=stddev))

  def table(self, length: int) -> tf.Tensor:
    return tf.gather(tf.cast(self.embeddings, self.compute_dtype),
                     relative_distance_index(length))


class AxialAttention1D(tf_keras.layers.Layer):
  """Multi-head position-sensitive self-attention along axis 1 of [B, L, C].

  Global along the axis: `query_region` (MaX: 129) must cover the length;
  local (blocked) axial attention is not needed for crops up to 2049 at
  stride 16 and is refused with a clear error.
  """

  def __init__(self, key_depth: int, value_depth: int, num_heads: int,
               name: str, norm: norm_act.NormConfig, query_region: int = 129):
    super().__init__(name=name)
    if key_depth % num_heads or value_depth % num_heads:
      raise ValueError(f'{name}: key depth {key_depth} and value depth '
                       f'{value_depth} must be divisible by {num_heads} heads')
    self._key_depth = key_depth
    self._value_depth = value_depth
    self._num_heads = num_heads
    self._query_region = query_region
    self._qkv_norm = norm('batch_norm_qkv')
    # Stacked [3, B, heads, L, L] similarities: one (gamma, beta) per term and
    # head.
    self._similarity_norm = norm('batch_norm_similarity', axis=[0, 2])
    # Stacked [2, B, heads, L, d]: per term, head and channel.
    self._retrieval_norm = norm('batch_norm_retrieved_output', axis=[0, 2, 4])
    self._query_rpe = RelativePositionalEncoding(
        key_depth // num_heads, 'query_rpe')
    self._key_rpe = RelativePositionalEncoding(
        key_depth // num_heads, 'key_rpe')
    self._value_rpe = RelativePositionalEncoding(
        value_depth // num_heads, 'value_rpe')

  def build(self, input_shape):
    length, channels = input_shape[1], input_shape[2]
    if length > self._query_region:
      raise ValueError(
          f'{self.name}: axis length {length} exceeds '
          f'model_options.backbone.axial_query_region={self._query_region}; '
          'local axial attention is not implemented, raise the region')
    self.qkv_kernel = self.add_weight(
        name='qkv_kernel',
        shape=(channels, 2 * self._key_depth + self._value_depth),
        initializer=tf_keras.initializers.TruncatedNormal(
            stddev=channels ** -0.5))

  def call(self, x, training=False):
    length = x.shape[1]
    heads = self._num_heads
    qkv = self._qkv_norm(tf.einsum('blc,cd->bld', x, self.qkv_kernel),
                         training=training)
    q, k, v = tf.split(
        qkv, [self._key_depth, self._key_depth, self._value_depth], axis=-1)
    q = tf.reshape(q, [-1, length, heads, self._key_depth // heads])
    k = tf.reshape(k, [-1, length, heads, self._key_depth // heads])
    v = tf.reshape(v, [-1, length, heads, self._value_depth // heads])
    r_q = self._query_rpe.table(length)  # [L, L, dk]
    r_k = self._key_rpe.table(length)
    r_v = self._value_rpe.table(length)  # [L, L, dv]
    similarity = tf.stack([
        tf.einsum('bihd,bjhd->bhij', q, k),
        tf.einsum('bihd,ijd->bhij', q, r_q),
        tf.einsum('bjhd,ijd->bhij', k, r_k),
    ])
    similarity = self._similarity_norm(similarity, training=training)
    weights = tf.nn.softmax(tf.reduce_sum(similarity, axis=0), axis=-1)
    retrieved = tf.stack([
        tf.einsum('bhij,bjhd->bhid', weights, v),
        tf.einsum('bhij,ijd->bhid', weights, r_v),
    ])
    retrieved = tf.reduce_sum(
        self._retrieval_norm(retrieved, training=training), axis=0)
    retrieved = tf.transpose(retrieved, [0, 2, 1, 3])
    return tf.reshape(retrieved, [-1, length, self._value_depth])


class AxialAttention2D(tf_keras.layers.Layer):
  """Height-axis then width-axis attention on [B, H, W, C] -> [B, H', W', Dv].

  A stride of 2 subsamples after the corresponding axis.
  """

  def __init__(self, filters: int, name: str, norm: norm_act.NormConfig,
               num_heads: int = 8, strides: int = 1, key_expansion: float = 1,
               value_expansion: float = 2, query_region: int = 129):
    super().__init__(name=name)
    self._strides = strides
    key_depth = int(round(filters * key_expansion))
    self.value_depth = int(round(filters * value_expansion))
    self._height_axis = AxialAttention1D(key_depth, self.value_depth,
                                         num_heads, 'height_axis', norm,
                                         query_region)
    self._width_axis = AxialAttention1D(key_depth, self.value_depth,
                                        num_heads, 'width_axis', norm,
                                        query_region)

  def call(self, x, training=False):
    _, height, width, channels = x.shape
    # Height pass: the width axis joins the batch.
    y = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, height, channels])
    y = self._height_axis(y, training=training)
    y = tf.transpose(tf.reshape(y, [-1, width, height, self.value_depth]),
                     [0, 2, 1, 3])
    if self._strides > 1:
      y = y[:, ::self._strides]
    strided_height = y.shape[1]
    y = tf.reshape(y, [-1, width, self.value_depth])
    y = self._width_axis(y, training=training)
    y = tf.reshape(y, [-1, strided_height, width, self.value_depth])
    if self._strides > 1:
      y = y[:, :, ::self._strides]
    return y

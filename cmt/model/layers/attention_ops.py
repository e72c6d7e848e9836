"""The attention and clustering equations of MaX-DeepLab and CMT-DeepLab as
pure functions of projected features (multi-head where the paper is).

Shapes: B batch, P = HW pixels, N cluster centers, h heads, d channels per
head, D = h * d. `normalize` arguments are the BatchNorms the layers apply to
similarity logits (identity in the equation tests).
"""

from typing import Callable, Optional, Sequence

import tensorflow as tf

Normalize = Optional[Callable[[tf.Tensor], tf.Tensor]]


def _apply(normalize: Normalize, x: tf.Tensor) -> tf.Tensor:
  return x if normalize is None else normalize(x)


def multihead_attention_weights(query: tf.Tensor,
                                keys: Sequence[tf.Tensor],
                                normalize: Normalize = None) -> tf.Tensor:
  """softmax over the concatenated keys of (q . k): [B, h, Lq, sum Lk].

  Args:
    query: [B, Lq, h, d].
    keys: [B, Lk_i, h, d] each; one softmax runs over all of them (MaX-DeepLab
      attends from a center to all pixels and all centers at once).
    normalize: applied to the [B, h, Lq, sum Lk] logits before the softmax.
  """
  key = tf.concat(list(keys), axis=1)
  logits = tf.einsum('bqhd,bkhd->bhqk', query, key)
  return tf.nn.softmax(_apply(normalize, logits), axis=-1)


def retrieve(weights: tf.Tensor, values: Sequence[tf.Tensor]) -> tf.Tensor:
  """sum_k weights(q, k) v_k: [B, h, Lq, sum Lk] x [B, Lk_i, h, dv] ->
  [B, h, Lq, dv]."""
  value = tf.concat(list(values), axis=1)
  return tf.einsum('bhqk,bkhd->bhqd', weights, value)


def assignment_logits(pixel_key: tf.Tensor, center_query: tf.Tensor,
                      previous_logits: Optional[tf.Tensor] = None,
                      normalize: Normalize = None) -> tf.Tensor:
  """Eq. 6 before the softmax: S + K~^p (Q~^c)^T, [B, P, N].

  Single-head: the affinity sums over all D channels of [B, P, D] pixel keys
  and [B, N, D] center queries. `previous_logits` is S, the logits of the
  previous layer (the residual path between cluster assignments).
  """
  affinity = _apply(normalize,
                    tf.einsum('bpd,bnd->bpn', pixel_key, center_query))
  return affinity if previous_logits is None else previous_logits + affinity


def assignment(logits: tf.Tensor) -> tf.Tensor:
  """Eq. 6: Z = softmax_N(logits), each pixel distributes over the centers."""
  return tf.nn.softmax(logits, axis=-1)


def clustering_center_update(z: tf.Tensor, pixel_value: tf.Tensor) -> tf.Tensor:
  """The clustering term of Eq. 7: Z^T V^p, [B, P, N] x [B, P, D] -> [B, N, D]."""
  return tf.einsum('bpn,bpd->bnd', z, pixel_value)


def clustering_pixel_update(z: tf.Tensor, center_value: tf.Tensor) -> tf.Tensor:
  """The update of Eq. 8 without the residual: Z V^c, [B, P, N] x [B, N, D]
  -> [B, P, D]."""
  return tf.einsum('bpn,bnd->bpd', z, center_value)


def merge_heads(x: tf.Tensor) -> tf.Tensor:
  """[B, h, L, d] -> [B, L, h * d]."""
  _, heads, length, depth = x.shape
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, length, heads * depth])


def split_heads(x: tf.Tensor, heads: int) -> tf.Tensor:
  """[B, L, h * d] -> [B, L, h, d]."""
  return tf.reshape(x, [-1, x.shape[1], heads, x.shape[2] // heads])

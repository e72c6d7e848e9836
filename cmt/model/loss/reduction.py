"""The per-image average every DeepLab2 loss term uses.

DeepLab2 (base_loss.compute_average_top_k_loss and FocalCrossEntropyLoss)
divides the sum of an image's weighted terms by the number of terms that are
non-zero, not by the number of candidates: a term that is exactly 0 in
float32 (a pixel or slot already classified with certainty, or one weighted
0) does not count. The papers are silent on the normaliser, so it decides.
"""

import tensorflow as tf


def nonzero_mean(weighted_terms: tf.Tensor) -> tf.Tensor:
  """[B, T] -> [B]: sum over T / number of non-zero terms (0 if none)."""
  count = tf.reduce_sum(tf.cast(tf.not_equal(weighted_terms, 0.0),
                                weighted_terms.dtype), axis=-1)
  return tf.math.divide_no_nan(tf.reduce_sum(weighted_terms, axis=-1), count)

"""A tiny model fitted to one fixed batch: the losses can be driven down."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.model.loss import builder
from cmt.protos import trainer_pb2
from tests.model.loss import toy

_CROP, _NUM_MASKS, _NUM_SLOTS, _NUM_POINTS, _CHANNELS = 33, 6, 8, 4, 8


class TinyPanopticModel(tf_keras.Model):
  """A few convolutions producing every output the losses read.

  Stride 4 (33 -> 9) pixel branch for mask logits, pixel features and
  semantic logits; a pooled branch for class logits and reference points.
  """

  def __init__(self):
    super().__init__()
    conv = lambda c, s: tf_keras.layers.Conv2D(c, 3, s, 'same',
                                               activation='relu')
    self.trunk = [conv(16, 1), conv(32, 2), conv(32, 2), conv(32, 1)]
    self.mask_head = tf_keras.layers.Conv2D(_NUM_SLOTS, 1)
    self.feature_head = tf_keras.layers.Conv2D(_CHANNELS, 1)
    self.semantic_head = tf_keras.layers.Conv2D(toy.NUM_CLASSES + 1, 1)
    self.pooled = tf_keras.layers.Dense(64, activation='relu')
    self.class_head = tf_keras.layers.Dense(
        _NUM_SLOTS * (toy.NUM_CLASSES + 1))
    self.point_head = tf_keras.layers.Dense(_NUM_SLOTS * _NUM_POINTS * 2)

  def call(self, images):
    x = images / 127.5 - 1.0
    for layer in self.trunk:
      x = layer(x)
    pooled = self.pooled(tf.concat([tf.reduce_mean(x, axis=[1, 2]),
                                    tf.reduce_max(x, axis=[1, 2])], -1))
    batch = tf.shape(images)[0]
    return {
        common.MASK_LOGITS: self.mask_head(x),
        common.PIXEL_FEATURES: tf.math.l2_normalize(self.feature_head(x), -1),
        common.SEMANTIC_LOGITS: self.semantic_head(x),
        common.CLASS_LOGITS: tf.reshape(
            self.class_head(pooled),
            [batch, _NUM_SLOTS, toy.NUM_CLASSES + 1]),
        common.REFERENCE_POINTS: tf.sigmoid(tf.reshape(
            self.point_head(pooled), [batch, _NUM_SLOTS, _NUM_POINTS, 2])),
    }


def _fixed_batch():
  """Two images of coloured rectangles; each mask has its own colour."""
  rng = np.random.default_rng(0)
  mask_id = -np.ones((2, _CROP, _CROP), np.int32)
  mask_id[0, :, :] = 0                      # Stuff background.
  mask_id[0, 4:16, 6:20] = 1
  mask_id[0, 18:30, 2:12] = 2
  mask_id[0, 20:28, 22:31] = 3
  mask_id[1, :20, :] = 0                    # Stuff top, void bottom rows.
  mask_id[1, 8:28, 8:24] = 1
  mask_id[1, 2:10, 24:32] = 2
  mask_class = np.array([[2, 1, 3, 1, 0, 0], [2, 3, 1, 0, 0, 0]], np.int32)
  colours = rng.uniform(0, 255, (2, _NUM_MASKS, 3))
  images = np.where(mask_id[..., None] >= 0,
                    np.take_along_axis(colours[:, None], np.maximum(
                        mask_id, 0).reshape(2, -1)[..., None, None],
                                       axis=2).reshape(2, _CROP, _CROP, 3),
                    127.0)
  images = images + rng.normal(0, 5, images.shape)
  return images.astype(np.float32), toy.ground_truth(mask_id, mask_class)


@pytest.mark.slow
def test_tiny_model_drives_the_total_loss_down_tenfold():
  tf_keras.utils.set_random_seed(0)
  images, ground_truth = _fixed_batch()
  model = TinyPanopticModel()
  # MaX/kMaX COCO weights; MASK_CENTER, whose optimum is near 0 (the pixel
  # contrastive cross-entropy is bounded below by the entropy log |P(a)| of
  # its soft target).
  loss_fn = builder.build_loss(
      toy.options(pq_style=3.0, mask_id=0.3, instance=1.0, semantic=1.0,
                  mask_approximation=1.0,
                  discrimination=trainer_pb2.InstanceDiscriminationOptions
                  .MASK_CENTER),
      toy.DATASET)
  optimizer = tf_keras.optimizers.Adam(3e-3)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      losses = loss_fn(ground_truth, model(images))
    gradients = tape.gradient(losses[common.LOSS_TOTAL],
                              model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return losses

  history = [train_step() for _ in range(300)]
  first = float(history[0][common.LOSS_TOTAL])
  last = float(history[-1][common.LOSS_TOTAL])
  final = {k: round(float(v), 4) for k, v in history[-1].items()}
  assert np.isfinite(first) and np.isfinite(last)
  assert last * 10 <= first, (first, final)

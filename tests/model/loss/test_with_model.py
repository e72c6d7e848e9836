"""The losses on a real (tiny) CMT-DeepLab's outputs and the pipeline's
ground truth: the shared contracts of cmt.common fit together."""

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt.data import crop_targets as targets_lib
from cmt.model import builder as model_builder
from cmt.model.loss import builder
from tests.model import helpers
from tests.model.loss import toy

_CROP = 33


def _ground_truth(max_num_masks):
  """Two labels (semantic * 256 + instance) through the data targets."""
  labels = np.full((2, _CROP, _CROP), 2 * 256, np.int32)  # Stuff 'b'.
  labels[0, 4:20, 6:30] = 1 * 256 + 1
  labels[0, 22:32, 2:12] = 3 * 256 + 1
  labels[0, 25:, 25:] = 0                                  # Void.
  labels[1, 10:30, 10:25] = 1 * 256 + 0                    # Crowd.
  labels[1, 0:8, 0:8] = 1 * 256 + 4
  per_image = [targets_lib.compute_targets(label, toy.DATASET, max_num_masks)
               for label in labels]
  return {key: tf.stack([t[key] for t in per_image])
          for key in per_image[0]}


@pytest.mark.slow
def test_losses_on_a_tiny_cmt_deeplab():
  options = helpers.load(*helpers.TINY, *helpers.CLUSTERING,
                         *helpers.LOCATION)
  model = model_builder.build_model(options, toy.DATASET)
  ground_truth = _ground_truth(
      options.model_options.transformer.num_cluster_centers)
  images = tf.random.stateless_uniform((2, _CROP, _CROP, 3), [0, 1],
                                       maxval=255.0)
  with tf.GradientTape() as tape:
    outputs = model(images, training=True)
    losses = builder.build_loss(options, toy.DATASET)(ground_truth, outputs)
  assert outputs[common.AUX_OUTPUTS]  # Deep supervision has layers to use.
  for name in builder.LOSS_NAMES:
    assert np.isfinite(float(losses[name])) and float(losses[name]) > 0, name
  gradients = tape.gradient(losses[common.LOSS_TOTAL],
                            model.trainable_variables)
  for variable, gradient in zip(model.trainable_variables, gradients):
    if gradient is not None:
      assert np.isfinite(tf.convert_to_tensor(gradient).numpy()).all(), (
          variable.name)
  options.trainer_options.loss_options.deep_supervision = False
  shallow = builder.build_loss(options, toy.DATASET)(ground_truth, outputs)
  assert float(shallow[common.LOSS_PQ_STYLE]) < float(
      losses[common.LOSS_PQ_STYLE])

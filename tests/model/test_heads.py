"""The heads start as DeepLab2's do: a classifier's last layer from a
truncated normal with standard deviation 0.01."""

import numpy as np
import tensorflow as tf

from cmt.model import heads
from cmt.model.layers import norm_act

# COCO: 133 classes + void; DeepLab2's semantic and pixel-space head widths.
_NUM_CLASSES = 133
_HEAD_CHANNELS = 256


def _assert_truncated_normal_001(kernel: np.ndarray, what: str):
  """Keras' TruncatedNormal(stddev=0.01) redraws beyond 2 stddev, which
  leaves a standard deviation of 0.01 x 0.880."""
  assert np.abs(kernel).max() <= 0.02, what
  assert 0.0084 < kernel.std() < 0.0092, (what, kernel.std())
  assert abs(kernel.mean()) < 2e-4, (what, kernel.mean())


def test_semantic_head_last_layer_starts_as_deeplab2s():
  head = heads.AuxiliarySemanticHead(
      _HEAD_CHANNELS, 8, 8, _NUM_CLASSES, norm_act.NormConfig(), 'relu',
      aspp_channels=8, decoder_channels=8)
  logits = head(tf.zeros([1, 3, 3, 8]), tf.zeros([1, 5, 5, 8]),
                tf.zeros([1, 9, 9, 8]))
  assert logits.shape == (1, 9, 9, _NUM_CLASSES + 1)
  final = [v for v in head.trainable_variables
           if 'final_conv' in v.name and 'kernel' in v.name]
  assert len(final) == 1, [v.name for v in head.trainable_variables]
  assert final[0].shape == (1, 1, _HEAD_CHANNELS, _NUM_CLASSES + 1)
  _assert_truncated_normal_001(final[0].numpy(), 'semantic final_conv')


def test_class_head_starts_as_deeplab2s():
  center_heads = heads.CenterHeads(_HEAD_CHANNELS, 8, _NUM_CLASSES, 0.9,
                                   norm_act.NormConfig(), 'relu')
  center_heads(tf.zeros([1, 4, 16]))
  kernel = center_heads._class_head.kernel.numpy()  # pylint: disable=protected-access
  assert kernel.shape == (_HEAD_CHANNELS, _NUM_CLASSES + 1)
  _assert_truncated_normal_001(kernel, 'class head')

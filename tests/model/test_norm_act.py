"""Drop path, activations, resizing and mixed precision of the model."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.data import dataset_info as dataset_info_lib
from cmt.model import builder
from cmt.model import spec
from cmt.model.layers import norm_act
from tests.model import helpers


def test_drop_path_schedules():
  assert spec.drop_path_rate(0.2, 'CONSTANT', 3) == 0.2
  # LINEAR: 0 at the stem, the full rate at stage 5 (index 4 of 4).
  assert spec.drop_path_rate(0.2, 'LINEAR', 4) == pytest.approx(0.2)
  assert spec.drop_path_rate(0.2, 'LINEAR', 3) == pytest.approx(0.15)
  with pytest.raises(ValueError, match='drop_path_schedule'):
    spec.drop_path_rate(0.2, 'DROP_PATH_SCHEDULE_UNSPECIFIED', 3)
  with pytest.raises(ValueError, match='drop_path_rate'):
    spec.drop_path_rate(1.0, 'LINEAR', 3)


def test_drop_path_drops_whole_examples_and_keeps_the_mean():
  tf.random.set_seed(0)
  x = tf.ones([4000, 2, 3])
  y = norm_act.maybe_drop_path(x, 0.25, training=True).numpy()
  per_example = y.reshape(4000, -1)
  # Each example is either dropped or scaled by 1 / keep as a whole.
  values = np.unique(per_example)
  assert len(values) == 2
  np.testing.assert_allclose(values, [0.0, 1 / 0.75], rtol=1e-6)
  assert (per_example.min(1) == per_example.max(1)).all()
  assert abs(y.mean() - 1.0) < 0.05
  np.testing.assert_array_equal(
      norm_act.maybe_drop_path(x, 0.25, training=False).numpy(), x.numpy())


def test_activation_from_config():
  x = tf.constant([-1.0, 0.5])
  relu = spec.ModelSpec.from_options(
      helpers.load('model_options.backbone.activation=RELU').model_options)
  assert relu.activation == 'relu'
  np.testing.assert_allclose(norm_act.get_activation('relu')(x), [0.0, 0.5])
  np.testing.assert_allclose(norm_act.get_activation('gelu')(x),
                             [-0.158655, 0.345731], rtol=1e-5)
  assert norm_act.get_activation('gelu') is norm_act.gelu
  with pytest.raises(ValueError, match='activation'):
    norm_act.get_activation('activation_unspecified')


@pytest.mark.parametrize('dtype, atol', [(tf.float32, 1e-6),
                                         (tf.bfloat16, 2e-2)])
def test_gelu_gives_the_exact_gelu_and_its_gradient(dtype, atol):
  """Same values as tf.nn.gelu; gradients against the float32 autodiff of
  tf.nn.gelu (bfloat16 within its precision)."""
  x = tf.linspace(-6.0, 6.0, 241)
  upstream = tf.linspace(0.5, 2.0, 241)
  with tf.GradientTape() as tape:
    tape.watch(x)
    reference = tf.nn.gelu(x, approximate=False)
  reference_grad = tape.gradient(reference, x, output_gradients=upstream)
  x, upstream = tf.cast(x, dtype), tf.cast(upstream, dtype)
  with tf.GradientTape() as tape:
    tape.watch(x)
    ours = norm_act.gelu(x)
  our_grad = tape.gradient(ours, x, output_gradients=upstream)
  np.testing.assert_array_equal(
      ours, tf.nn.gelu(x, approximate=False))  # The forward is that op.
  np.testing.assert_allclose(tf.cast(our_grad, tf.float32), reference_grad,
                             rtol=atol, atol=atol)


def _kept_for_backward(activation) -> set:
  """Names of the forward ops whose outputs the traced gradient reads."""
  @tf.function
  def gradient(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = activation(x)
    return y, tape.gradient(y, x)

  graph = gradient.get_concrete_function(
      tf.TensorSpec([4, 8], tf.float32)).graph

  def ancestors(tensor):
    seen, stack = set(), [tensor.op]
    while stack:
      op = stack.pop()
      if op.name not in seen:
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
    return seen

  y, grad = graph.outputs
  forward = ancestors(y)
  backward = ancestors(grad) - forward
  return {t.op.name for op in graph.get_operations() if op.name in backward
          for t in op.inputs if t.op.name in forward and
          t.shape.num_elements() == 32}


def test_gelu_backward_keeps_only_its_input():
  """What the custom gradient is for: tf.nn.gelu's own gradient keeps
  three more activation-sized tensors."""
  assert _kept_for_backward(norm_act.gelu) == {'x'}
  assert len(_kept_for_backward(
      lambda x: tf.nn.gelu(x, approximate=False)) - {'x'}) >= 3


def test_resize_align_corners_maps_grid_points_exactly():
  x = tf.reshape(tf.range(9, dtype=tf.float32), [1, 3, 3, 1])
  y = norm_act.resize_align_corners(x, [5, 5]).numpy()[0, :, :, 0]
  np.testing.assert_allclose(y[::2, ::2], x.numpy()[0, :, :, 0])


def test_mixed_bfloat16_outputs_are_float32():
  tf_keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    options = helpers.load(*helpers.TINY, *helpers.CLUSTERING,
                           *helpers.LOCATION)
    model = builder.build_model(options, dataset_info_lib.COCO_PANOPTIC)
    outputs = model(tf.zeros([1, 33, 33, 3]), training=True)
  finally:
    tf_keras.mixed_precision.set_global_policy('float32')
  for value in tf.nest.flatten(outputs):
    assert value.dtype == tf.float32
    assert np.isfinite(value.numpy()).all()
  assert outputs[common.MASK_LOGITS].shape == (1, 9, 9, 8)

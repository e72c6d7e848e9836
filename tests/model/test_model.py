"""The whole model: outputs and shapes under XLA, variants, options."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.data import dataset_info as dataset_info_lib
from cmt.model import builder
from cmt.evaluation import evaluator as evaluator_lib
from cmt.model import post_processing
from cmt.model.backbone import builders as backbone_lib
from cmt.model import spec
from cmt.model import stack as stack_lib
from cmt.protos import evaluator_pb2
from tests.model import helpers

INFO = dataset_info_lib.COCO_PANOPTIC


def _forward(options, crop, batch, training=False, jit_compile=True):
  """Builds and runs the model; XLA compilation is the TPU stand-in, eager
  mode checks the remaining variants faster on 2 CPU cores."""
  tf_keras.backend.clear_session()
  model = builder.build_model(options, INFO)
  images = tf.constant(np.random.default_rng(0).uniform(
      0, 255, (batch, crop, crop, 3)), tf.float32)
  # With the figures' outputs (CROSS_ATTENTION), which steps never compute.
  call = lambda x: model(x, training=training, figure_outputs=True)
  if jit_compile:
    return model, tf.function(call, jit_compile=True)(images)
  return model, call(images)


def _check_common_outputs(outputs, options, crop, batch):
  h = (crop - 1) // 4 + 1
  n = options.model_options.transformer.num_cluster_centers
  d = options.model_options.heads.pixel_space_output_channels
  assert outputs[common.MASK_LOGITS].shape == (batch, h, h, n)
  assert outputs[common.CLASS_LOGITS].shape == (batch, n, INFO.num_classes + 1)
  assert outputs[common.PIXEL_FEATURES].shape == (batch, h, h, d)
  assert outputs[common.SEMANTIC_LOGITS].shape == (batch, h, h,
                                                   INFO.num_classes + 1)
  h16 = (crop - 1) // 16 + 1
  assert outputs[common.CROSS_ATTENTION].shape == (batch, n, h16, h16)
  if options.model_options.clustering.clustering_update:
    # Z^T: each pixel's assignment over the centers sums to 1.
    assignment = outputs[common.CLUSTER_ASSIGNMENT].numpy()
    assert assignment.shape == (batch, n, h16, h16)
    np.testing.assert_allclose(assignment.sum(1), 1.0, rtol=1e-4)
  else:
    assert common.CLUSTER_ASSIGNMENT not in outputs
  norms = np.linalg.norm(outputs[common.PIXEL_FEATURES].numpy(), axis=-1)
  np.testing.assert_allclose(norms, 1.0, rtol=1e-4)
  for value in tf.nest.flatten(outputs):
    assert np.isfinite(value.numpy()).all()


def test_max_deeplab_s_forward_shapes_under_xla_batch_1_and_2():
  options = helpers.load(*helpers.TINY)
  for batch in (1, 2):
    _, outputs = _forward(options, 65, batch)
    _check_common_outputs(outputs, options, 65, batch)
    assert len(outputs[common.AUX_OUTPUTS]) == 0
    assert common.REFERENCE_POINTS not in outputs


def test_class_head_starts_biased_towards_void():
  options = helpers.load(*helpers.TINY)
  _, outputs = _forward(options, 33, 1, jit_compile=False)
  probabilities = tf.nn.softmax(outputs[common.CLASS_LOGITS]).numpy()
  np.testing.assert_allclose(probabilities[..., 0], 0.9, atol=0.05)


@pytest.mark.parametrize('jit_compile', [
    False, pytest.param(True, marks=pytest.mark.slow)])
def test_cmt_deeplab_outputs_per_layer_assignments_and_reference_points(
    jit_compile):
  options = helpers.load(*helpers.TINY, *helpers.CLUSTERING,
                         *helpers.LOCATION, *helpers.STRONGER_DECODER,
                         'model_options.decoder.transformer_stages[0].num_blocks=2')
  _, outputs = _forward(options, 33, 1, training=True,
                        jit_compile=jit_compile)
  _check_common_outputs(outputs, options, 33, 1)
  assert outputs[common.REFERENCE_POINTS].shape == (1, 8, 8, 2)
  aux = outputs[common.AUX_OUTPUTS]
  assert len(aux) == 4  # five transformer layers; the last is the output
  for layer_outputs in aux:
    assert layer_outputs[common.MASK_LOGITS].shape == (1, 3, 3, 8)
    assert layer_outputs[common.CLASS_LOGITS].shape == (1, 8, 134)
    assert layer_outputs[common.REFERENCE_POINTS].shape == (1, 8, 8, 2)


@pytest.mark.slow
def test_recursive_feature_network_forward_under_xla():
  options = helpers.load(*helpers.TINY, *helpers.CLUSTERING,
                         *helpers.LOCATION, *helpers.RFN)
  model, outputs = _forward(options, 33, 1)
  _check_common_outputs(outputs, options, 33, 1)
  assert len(model.stacks) == 2
  # Two stacks of two transformer layers (after the one stage-5 block and
  # the extra block), all but the very last supervised.
  assert len(outputs[common.AUX_OUTPUTS]) == 3


def test_backbone_variables_are_the_backbone_only():
  options = helpers.load(*helpers.TINY)
  model = builder.build_and_initialise(options, INFO, crop_size=33)
  pretrained = builder.backbone_variables(model)
  names = {v.name for v in pretrained}
  assert any('stem' in n for n in names)
  assert any('moving_mean' in n for n in names)  # BN statistics restore too
  assert not any('transformer' in n or 'memory_feature' in n for n in names)
  backbone = model.stacks[0].backbone
  assert len(pretrained) == len(backbone.variables)
  others = {v.ref() for v in model.variables} - {v.ref() for v in pretrained}
  assert any('transformer' in r.deref().name for r in others)


def test_axial_resnet_104_and_num_blocks_override():
  r104 = helpers.load(*helpers.R104).model_options.backbone
  assert spec.num_blocks_from_options(r104) == (3, 4, 24, 3)
  tiny = helpers.load(*helpers.TINY).model_options.backbone
  assert spec.num_blocks_from_options(tiny) == (1, 1, 1, 1)


def _backbone_spec(options):
  return spec.ModelSpec.from_options(options.model_options).backbone


def test_backbone_endpoints_and_strides():
  options = helpers.load(*helpers.TINY)
  backbone = backbone_lib.build(_backbone_spec(options), helpers_norm())
  endpoints = backbone(tf.zeros([1, 65, 65, 3]))
  sizes = {k: v.shape[1] for k, v in endpoints.items()}
  assert sizes == {'stage1': 33, 'stage2': 17, 'stage3': 9, 'stage4': 5,
                   'stage5': 5}
  assert {k: v.shape[-1] for k, v in endpoints.items() if k != 'stage1'} == {
      f'stage{s}': backbone.spec.width(s) for s in range(2, 6)}
  options.model_options.backbone.output_stride = 32
  backbone = backbone_lib.build(_backbone_spec(options), helpers_norm())
  assert backbone(tf.zeros([1, 65, 65, 3]))['stage5'].shape[1] == 3


def test_every_backbone_name_the_checks_accept_has_a_builder():
  assert set(backbone_lib.BUILDERS) == set(spec.BLOCKS_PER_STAGE)


def helpers_norm():
  from cmt.model.layers import norm_act  # pylint: disable=g-import-not-at-top
  return norm_act.NormConfig()


def test_sync_batchnorm_and_its_settings_come_from_the_solver():
  options = helpers.load(*helpers.TINY)
  solver = options.trainer_options.solver_options
  for sync in (True, False):
    solver.use_sync_batchnorm = sync
    solver.batchnorm_momentum = 0.9
    solver.batchnorm_epsilon = 1e-5
    model = builder.build_and_initialise(options, INFO, crop_size=33)
    norms = [l for l in model._flatten_layers()  # pylint: disable=protected-access
             if isinstance(l, tf_keras.layers.BatchNormalization)]
    assert norms and all(l.synchronized == sync for l in norms)
    assert all(l.momentum == pytest.approx(0.9) and
               l.epsilon == pytest.approx(1e-5) for l in norms)


@pytest.mark.parametrize('override, field', [
    ('model_options.backbone.output_stride=8', 'output_stride'),
    ('model_options.decoder.transformer_stages[0].backbone_stage=3',
     'backbone_stage'),
    ('model_options.clustering.coord_conv=true', 'coord_conv'),
    ('model_options.transformer.memory_channels=15', 'memory_channels'),
    ('model_options.heads.class_void_prior=1.0', 'class_void_prior'),
    ('trainer_options.solver_options.batchnorm_epsilon=0', 'batchnorm_epsilon'),
])
def test_bad_options_name_the_field(override, field):
  # Unchecked loading: `build_model` must refuse, naming the field, before
  # any layer exists (the layers do not repeat `model_checks`).
  options = helpers.load(*helpers.TINY, override, check=False)
  with pytest.raises(ValueError, match=field):
    builder.build_model(options, INFO)


def test_rfn_needs_stride_four_features():
  options = helpers.load(
      *helpers.TINY, *helpers.RFN,
      'model_options.decoder.high_resolution_output_stride=8', check=False)
  with pytest.raises(ValueError, match='high_resolution_output_stride = 8: '
                     'must be 4 with recursive_feature_network'):
    builder.build_model(options, INFO)


def test_decoder_to_stride_eight_predicts_and_evaluates():
  """Stride-8 logits become a crop-sized panoptic map that the evaluator
  scores against crop-sized ground truth (as the eval loop and the export
  do)."""
  options = helpers.load(
      *helpers.TINY, 'model_options.decoder.high_resolution_output_stride=8',
      # Classes above void from the start and no thresholds to speak of,
      # so that the untrained model predicts segments.
      'model_options.heads.class_void_prior=0.01',
      'evaluator_options.post_processing=PER_PIXEL',
      'evaluator_options.thing_class_threshold=0.001',
      'evaluator_options.pixel_confidence_threshold=0.01',
      'evaluator_options.thing_area_limit=0',
      'evaluator_options.stuff_area_limit=0')
  _, outputs = _forward(options, 33, 1, jit_compile=False)
  assert outputs[common.MASK_LOGITS].shape == (1, 5, 5, 8)
  predictions = post_processing.post_process(
      outputs, options.evaluator_options, INFO, crop_size=(33, 33))
  panoptic = predictions[common.PRED_PANOPTIC][0].numpy()
  assert panoptic.shape == (33, 33)
  assert (panoptic > 0).any()  # not an empty prediction
  evaluator = evaluator_lib.PanopticEvaluator(
      INFO, evaluator_pb2.EvaluatorOptions(compute_mask_ap=False))
  ground_truth = np.zeros((33, 33), np.int32)
  ground_truth[:, :16] = 1 * INFO.label_divisor + 1  # a person
  ground_truth[:, 16:] = 133 * INFO.label_divisor  # a stuff class
  evaluator.update(ground_truth, None, panoptic, 'stride8')
  metrics = evaluator.result()
  assert metrics['num_images'] == 1 and np.isfinite(metrics['pq'])


@pytest.mark.slow
def test_full_max_deeplab_s_forward_at_641_under_xla():
  options = helpers.load()
  _, outputs = _forward(options, 641, 1)
  _check_common_outputs(outputs, options, 641, 1)


def test_every_trainable_variable_gets_a_gradient():
  options = helpers.load(
      *helpers.TINY, *helpers.CLUSTERING, *helpers.LOCATION,
      *helpers.STRONGER_DECODER, *helpers.RFN,
      'model_options.decoder.transformer_stages[0].num_blocks=1',
      'model_options.decoder.transformer_stages[1].num_blocks=1')
  model = builder.build_model(options, INFO)
  images = tf.random.uniform([2, 33, 33, 3], 0, 255, seed=1)
  with tf.GradientTape() as tape:
    outputs = model(images, training=True)
    assert common.CROSS_ATTENTION not in outputs  # figures only
    loss = tf.add_n([tf.reduce_mean(tf.square(v))
                     for v in tf.nest.flatten(outputs)])
  gradients = tape.gradient(loss, model.trainable_variables)
  missing = [v.name for v, g in zip(model.trainable_variables, gradients)
             if g is None]
  assert not missing


def test_linear_drop_path_rates_follow_the_stride():
  options = helpers.load().model_options  # rate 0.2, LINEAR, output stride 16
  stack = stack_lib.Stack(spec.ModelSpec.from_options(options),
                          helpers_norm())
  stage4, stage5 = stack.backbone.stages[2:]
  # No drop below stride 16; stage 4 at stride 16 gets 3/4 of the rate; the
  # first stage-5 block still enters at stride 16.
  assert [b.drop_rate for b in stage4] == pytest.approx([0.0] + [0.15] * 5)
  assert [b.drop_rate for b in stage5] == pytest.approx([0.15, 0.2, 0.2])
  rates = [layer._drop_rate for layer in stack.transformer_layers]  # pylint: disable=protected-access
  assert rates == pytest.approx([0.15, 0.2, 0.2, 0.2])

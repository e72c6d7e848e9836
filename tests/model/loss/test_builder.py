"""build_loss against the numpy references, on edge cases, under XLA."""

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt.model.loss import builder
from cmt.model.loss import matcher
from cmt.model.loss import strided_targets as gt_lib
from cmt.protos import trainer_pb2
from tests.model.loss import reference
from tests.model.loss import toy

_TYPES = trainer_pb2.InstanceDiscriminationOptions
_ALL = dict(pq_style=3.0, mask_id=0.3, instance=1.0, semantic=1.0,
            mask_approximation=1.0)


def _at_output(gt, height):
  """Ground truth sampled on the h x h grid, flattened, as numpy."""
  crop = gt[common.GT_MASK_ID].shape[1]
  stride = (crop - 1) // (height - 1)
  mask_id = gt[common.GT_MASK_ID][:, ::stride, ::stride].reshape(
      len(gt[common.GT_MASK_ID]), -1)
  semantic = gt[common.GT_SEMANTIC][:, ::stride, ::stride].reshape(
      mask_id.shape)
  return mask_id, semantic


def _reference_losses(gt, outputs, discrimination, temperature=0.3,
                      alpha=0.75, aux=(), void_ratio_weight=False):
  """Per-loss batch means of the numpy references (A = all pixels)."""
  height = outputs[common.MASK_LOGITS].shape[1]
  mask_id, semantic = _at_output(gt, height)
  totals = {name: [] for name in builder.LOSS_NAMES}
  for b in range(len(mask_id)):
    classes = gt[common.GT_MASK_CLASS][b]
    valid = [gt[common.GT_MASK_VALID][b, k] > 0 and (mask_id[b] == k).any()
             for k in range(len(classes))]
    layers = [(outputs, mask_id[b], height)]
    for layer in aux:
      aux_height = layer[common.MASK_LOGITS].shape[1]
      layers.append((layer, _at_output(gt, aux_height)[0][b], aux_height))
    flat = lambda x, h: x[b].reshape(h * h, -1)
    assign, dice, prob = reference.match(
        mask_id[b], classes, valid, flat(outputs[common.MASK_LOGITS], height),
        outputs[common.CLASS_LOGITS][b])
    void_ratio = (reference.void_ratio(
        mask_id[b], flat(outputs[common.MASK_LOGITS], height))
                  if void_ratio_weight else None)
    pq = mask_ce = approx = 0.0
    for layer, layer_mask_id, h in layers:
      logits = flat(layer[common.MASK_LOGITS], h)
      pq += reference.pq_style(assign, dice, prob, layer_mask_id, classes,
                               logits, layer[common.CLASS_LOGITS][b], alpha,
                               void_ratio)
      mask_ce += reference.mask_id_cross_entropy(assign, layer_mask_id, logits)
      approx += reference.mask_approximation(
          assign, mask_id[b], height, height,
          layer[common.REFERENCE_POINTS][b])
    features = flat(outputs[common.PIXEL_FEATURES], height)
    if discrimination == _TYPES.MASK_CENTER:
      instance = reference.mask_center(features, mask_id[b], valid,
                                       gt[common.GT_MASK_IS_THING][b],
                                       temperature)
    else:
      instance = reference.pixel_contrastive(features, mask_id[b], temperature)
    totals[common.LOSS_PQ_STYLE].append(3.0 * pq)
    totals[common.LOSS_MASK_ID].append(0.3 * mask_ce)
    totals[common.LOSS_MASK_APPROXIMATION].append(approx)
    totals[common.LOSS_INSTANCE_DISCRIMINATION].append(instance)
    totals[common.LOSS_SEMANTIC].append(reference.semantic(
        semantic[b], flat(outputs[common.SEMANTIC_LOGITS], height)))
  return {name: float(np.mean(v)) for name, v in totals.items()}


def _check(gt, outputs, discrimination=_TYPES.PIXEL_CONTRASTIVE,
           void_ratio_weight=False, **kwargs):
  unmatched = (trainer_pb2.PQStyleLossOptions.VOID_RATIO if void_ratio_weight
               else trainer_pb2.PQStyleLossOptions.CONSTANT)
  options = toy.options(**_ALL, discrimination=discrimination,
                        unmatched_weight=unmatched)
  losses = builder.build_loss(options, toy.DATASET)(gt, outputs)
  losses = {k: float(v) for k, v in losses.items()}
  expected = _reference_losses(gt, outputs, discrimination,
                               void_ratio_weight=void_ratio_weight, **kwargs)
  for name in builder.LOSS_NAMES:
    assert np.isfinite(losses[name]), name
    assert losses[name] == pytest.approx(expected[name], rel=2e-4,
                                         abs=1e-5), name
  assert losses[common.LOSS_TOTAL] == pytest.approx(
      sum(losses[n] for n in builder.LOSS_NAMES), rel=1e-6)
  return losses


@pytest.mark.parametrize('discrimination',
                         [_TYPES.PIXEL_CONTRASTIVE, _TYPES.MASK_CENTER])
def test_random_batch_matches_reference(discrimination):
  gt, outputs = toy.random_case(np.random.default_rng(0))
  losses = _check(gt, outputs, discrimination)
  assert all(losses[n] > 0 for n in builder.LOSS_NAMES)


def test_no_things():
  gt, outputs = toy.random_case(np.random.default_rng(1))
  gt[common.GT_MASK_CLASS][gt[common.GT_MASK_CLASS] > 0] = 2  # All stuff.
  gt[common.GT_MASK_IS_THING][:] = 0.0
  gt[common.GT_SEMANTIC][gt[common.GT_SEMANTIC] > 0] = 2
  losses = _check(gt, outputs, _TYPES.MASK_CENTER)
  assert losses[common.LOSS_INSTANCE_DISCRIMINATION] == 0.0  # Things only.
  losses = _check(gt, outputs, _TYPES.PIXEL_CONTRASTIVE)
  assert losses[common.LOSS_INSTANCE_DISCRIMINATION] > 0.0  # Stuff too.


def test_no_ground_truth_at_all():
  gt, outputs = toy.random_case(np.random.default_rng(2), num_valid=0)
  for discrimination in (_TYPES.PIXEL_CONTRASTIVE, _TYPES.MASK_CENTER):
    losses = _check(gt, outputs, discrimination)
    # Only the class term remains: every slot pushed to void.
    assert losses[common.LOSS_PQ_STYLE] > 0.0
    for name in (common.LOSS_MASK_ID, common.LOSS_INSTANCE_DISCRIMINATION,
                 common.LOSS_SEMANTIC, common.LOSS_MASK_APPROXIMATION):
      assert losses[name] == 0.0, name


def test_all_void_image_beside_a_normal_one():
  gt, outputs = toy.random_case(np.random.default_rng(3))
  gt[common.GT_MASK_ID][1] = -1  # Image 1: every pixel void.
  gt[common.GT_SEMANTIC][1] = 0
  _check(gt, outputs)
  # GT_MASK_VALID still says its masks exist: they have no pixels, so
  # they are not matched; the batch mean halves image 0's pixel losses.
  single = {k: v[:1] for k, v in gt.items()}
  alone = builder.build_loss(toy.options(**_ALL), toy.DATASET)(
      single, {k: v[:1] for k, v in outputs.items()})
  both = builder.build_loss(toy.options(**_ALL), toy.DATASET)(gt, outputs)
  for name in (common.LOSS_MASK_ID, common.LOSS_SEMANTIC,
               common.LOSS_INSTANCE_DISCRIMINATION,
               common.LOSS_MASK_APPROXIMATION):
    assert float(both[name]) == pytest.approx(float(alone[name]) / 2,
                                              rel=1e-5), name


def test_maximum_number_of_masks():
  # K = N = 8, all valid, every pixel labelled: the matching is a full
  # permutation and every slot is positive.
  gt, outputs = toy.random_case(np.random.default_rng(4), num_masks=8,
                                num_slots=8, num_valid=8, void_fraction=0.0,
                                crop=33)
  _check(gt, outputs)


def test_more_masks_than_slots_is_an_error():
  gt, outputs = toy.random_case(np.random.default_rng(5), num_masks=9,
                                num_slots=8)
  with pytest.raises(ValueError, match='K=9.*N=8'):
    builder.build_loss(toy.options(**_ALL), toy.DATASET)(gt, outputs)


@pytest.mark.parametrize('num_valid', [0, 4])
def test_gradients_are_finite(num_valid):
  gt, outputs = toy.random_case(np.random.default_rng(6), num_valid=num_valid)
  outputs[common.AUX_OUTPUTS] = ({
      common.MASK_LOGITS: outputs[common.MASK_LOGITS][:, ::2, ::2],
      common.CLASS_LOGITS: outputs[common.CLASS_LOGITS],
      common.REFERENCE_POINTS: outputs[common.REFERENCE_POINTS]},)
  variables = tf.nest.map_structure(tf.Variable, outputs)
  loss_fn = builder.build_loss(toy.options(**_ALL), toy.DATASET)
  with tf.GradientTape() as tape:
    total = loss_fn(gt, variables)[common.LOSS_TOTAL]
  gradients = tape.gradient(total, tf.nest.flatten(variables))
  for gradient in gradients:
    assert gradient is not None
    assert np.isfinite(gradient.numpy()).all()
  assert max(np.abs(g.numpy()).max() for g in gradients) > 0


def test_compiles_under_xla_with_deep_supervision():
  gt, outputs = toy.random_case(np.random.default_rng(7))
  outputs[common.AUX_OUTPUTS] = ({
      common.MASK_LOGITS: outputs[common.MASK_LOGITS][:, ::2, ::2] * 2,
      common.CLASS_LOGITS: outputs[common.CLASS_LOGITS] + 1.0,
      common.REFERENCE_POINTS: outputs[common.REFERENCE_POINTS] * 0.5},)
  loss_fn = builder.build_loss(toy.options(**_ALL), toy.DATASET)
  eager = loss_fn(gt, outputs)
  compiled = tf.function(loss_fn, jit_compile=True)(gt, outputs)
  assert set(compiled) == set(builder.LOSS_NAMES) | {common.LOSS_TOTAL}
  for name, value in eager.items():
    assert value.dtype == tf.float32 and value.shape == ()
    assert float(compiled[name]) == pytest.approx(float(value), rel=1e-4)

  @tf.function(jit_compile=True)
  def gradients(outputs):
    with tf.GradientTape() as tape:
      tape.watch(outputs)
      total = loss_fn(gt, outputs)[common.LOSS_TOTAL]
    return tape.gradient(total, outputs)

  for gradient in tf.nest.flatten(gradients(outputs)):
    assert np.isfinite(gradient.numpy()).all()


def test_deep_supervision_reuses_the_final_matching():
  rng = np.random.default_rng(8)
  gt, outputs = toy.random_case(rng)
  # A layer at stride 8 (3 x 3 of the 17 x 17 crop) with its own logits.
  aux = {common.MASK_LOGITS: rng.normal(size=(2, 3, 3, 8)).astype(np.float32),
         common.CLASS_LOGITS: rng.normal(size=(2, 8, 4)).astype(np.float32),
         common.REFERENCE_POINTS: rng.random((2, 8, 5, 2)).astype(np.float32)}
  outputs[common.AUX_OUTPUTS] = (aux,)
  _check(gt, outputs, aux=(aux,))
  _check(gt, outputs, aux=(aux,), void_ratio_weight=True)
  # Without deep supervision the auxiliary output is ignored.
  without = builder.build_loss(toy.options(**_ALL, deep_supervision=False),
                               toy.DATASET)(gt, outputs)
  bare = builder.build_loss(toy.options(**_ALL), toy.DATASET)(
      gt, {k: v for k, v in outputs.items() if k != common.AUX_OUTPUTS})
  for name in builder.LOSS_NAMES:
    assert float(without[name]) == pytest.approx(float(bare[name]), rel=1e-6)


def test_an_imposed_assignment_replaces_the_hungarian_one():
  gt, outputs = toy.random_case(np.random.default_rng(10))
  loss_fn = builder.build_loss(toy.options(**_ALL), toy.DATASET)
  targets = gt_lib.mask_targets(gt, 5, 5)
  found = matcher.match(targets, outputs[common.MASK_LOGITS],
                        outputs[common.CLASS_LOGITS]).assignment
  hungarian = loss_fn(gt, outputs)
  imposed = loss_fn(gt, outputs, assignment=found)
  for name in builder.LOSS_NAMES:
    assert float(imposed[name]) == float(hungarian[name]), name
  # Another assignment (masks moved one slot on) changes the matched terms.
  shifted = loss_fn(gt, outputs, assignment=tf.roll(found, 1, axis=-1))
  assert float(shifted[common.LOSS_MASK_ID]) != float(
      hungarian[common.LOSS_MASK_ID])
  with pytest.raises(ValueError, match='imposed assignment'):
    loss_fn(gt, outputs, assignment=found[:, :, :-1])


def test_mask_approximation_needs_reference_points():
  gt, outputs = toy.random_case(np.random.default_rng(9))
  del outputs[common.REFERENCE_POINTS]
  losses = builder.build_loss(toy.options(**_ALL), toy.DATASET)(gt, outputs)
  assert float(losses[common.LOSS_MASK_APPROXIMATION]) == 0.0


def test_strided_downsample_takes_every_stride_th_pixel():
  labels = np.arange(2 * 9 * 9).reshape(2, 9, 9)
  np.testing.assert_array_equal(gt_lib.strided_downsample(labels, 3, 3),
                                labels[:, ::4, ::4])
  with pytest.raises(ValueError, match='not on a strided grid'):
    gt_lib.strided_downsample(labels, 4, 4)


@pytest.mark.parametrize('field,value,message', [
    ('pq_style_loss.weight', -1.0, 'finite number >= 0'),
    ('pq_style_loss.alpha', 1.5, r'in \[0, 1\]'),
    ('pq_style_loss.unmatched_weight', 0, 'CONSTANT or VOID_RATIO'),
    ('mask_id_cross_entropy_loss.weight', float('nan'), 'finite'),
    ('instance_discrimination_loss.weight', -0.1, '>= 0'),
    ('instance_discrimination_loss.type', 0, 'MASK_CENTER or'),
    ('instance_discrimination_loss.temperature', 0.0, '> 0'),
    ('instance_discrimination_loss.sample_count', 0, '>= 1'),
    ('instance_discrimination_loss.sample_temperature', -1.0, '>= 0'),
    ('semantic_loss.weight', -2.0, '>= 0'),
    ('mask_approximation_loss.weight', float('inf'), 'finite'),
])
def test_bad_options_name_the_field(field, value, message):
  options = toy.options(**_ALL)
  message_path, name = field.rsplit('.', 1)
  setattr(getattr(options.trainer_options.loss_options, message_path), name,
          value)
  with pytest.raises(ValueError, match=f'loss_options.{field}.*{message}'):
    builder.build_loss(options, toy.DATASET)


def test_every_loss_option_changes_the_result():
  """Each field of the loss messages is read: changing it changes a loss."""
  rng = np.random.default_rng(10)
  gt, outputs = toy.random_case(rng, crop=33)
  outputs[common.AUX_OUTPUTS] = ({
      common.MASK_LOGITS: outputs[common.MASK_LOGITS],
      common.CLASS_LOGITS: outputs[common.CLASS_LOGITS] * 3.0},)
  base = dict(_ALL, sample_count=20, sample_temperature=1.5)
  changes = {
      'pq_style': 1.0, 'mask_id': 1.0, 'instance': 2.0, 'semantic': 2.0,
      'mask_approximation': 2.0, 'alpha': 0.5,
      'unmatched_weight': trainer_pb2.PQStyleLossOptions.VOID_RATIO,
      'temperature': 0.7,
      'discrimination': _TYPES.MASK_CENTER, 'sample_count': 40,
      'sample_temperature': 4.0, 'deep_supervision': False}

  def run(**settings):
    tf.random.set_seed(0)
    losses = builder.build_loss(toy.options(**settings), toy.DATASET)(
        gt, outputs)
    return np.array([float(losses[n]) for n in builder.LOSS_NAMES])

  reference_run = run(**base)
  np.testing.assert_array_equal(run(**base), reference_run)  # Seeded.
  for field, value in changes.items():
    assert not np.allclose(run(**dict(base, **{field: value})),
                           reference_run), field
  covered = {'pq_style_loss': ('weight', 'alpha', 'unmatched_weight'),
             'mask_id_cross_entropy_loss': ('weight',),
             'instance_discrimination_loss': (
                 'weight', 'type', 'temperature', 'sample_count',
                 'sample_temperature'),
             'semantic_loss': ('weight',),
             'mask_approximation_loss': ('weight',),
             '': ('deep_supervision',)}
  loss_options = trainer_pb2.LossOptions.DESCRIPTOR
  for field in loss_options.fields:
    if field.message_type is None:
      assert field.name in covered['']
    else:
      assert {f.name for f in field.message_type.fields} == set(
          covered[field.name]), field.name


def test_missing_or_misshapen_outputs_are_named():
  gt, outputs = toy.random_case(np.random.default_rng(11))
  loss_fn = builder.build_loss(toy.options(**_ALL), toy.DATASET)
  without_features = {k: v for k, v in outputs.items()
                      if k != common.PIXEL_FEATURES}
  with pytest.raises(ValueError, match='pixel_features.*instance_disc'):
    loss_fn(gt, without_features)
  broken_aux = dict(outputs, **{common.AUX_OUTPUTS: (
      {common.MASK_LOGITS: outputs[common.MASK_LOGITS]},)})
  with pytest.raises(ValueError, match=r'aux_outputs\[0\].*class_logits'):
    loss_fn(gt, broken_aux)
  wrong_classes = dict(outputs, **{
      common.CLASS_LOGITS: outputs[common.CLASS_LOGITS][..., :3]})
  with pytest.raises(ValueError, match='3 classes; the dataset has 3 \\+ void'):
    loss_fn(gt, wrong_classes)

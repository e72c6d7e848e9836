"""Our losses on DeepLab2's own MaX-DeepLab-S outputs equal DeepLab2's values.

Fixture: ../shared/deeplab2/max_deeplab_s (its README, section "Loss"):
DeepLab2's raw outputs (`outputs.npz`), the real COCO ground truth of the
crop in DeepLab2's label convention (`loss_ground_truth.npz`) and DeepLab2's
loss terms on them (`losses.json`). Our loss gets the same tensors mapped to
its conventions:

* ground truth: DeepLab2's `panoptic_label` (semantic * 256 + instance, crowd
  already void) through our own `compute_targets`; our K masks are sorted by
  area, DeepLab2's rows are 128 thing ids + 53 stuff classes, so masks are
  paired by their pixels;
* class logits: DeepLab2 puts void last, we put it first (index 0);
* semantic logits, mask logits and pixel features: the same layout.

The matching here is a tie-break of DeepLab2's float32 Hungarian solver
(every score is below 1.5e-12), so its recorded assignment is imposed for
the terms that depend on it.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt.data import crop_targets as targets_lib
from cmt.data import dataset_info
from cmt.model.loss import builder
from cmt.model.loss import matcher
from cmt.model.loss import pq_style
from cmt.model.loss import strided_targets as gt_lib
from cmt.protos import config_pb2
from cmt.protos import trainer_pb2
from tests import conftest
from tests.model.loss import reference as loss_reference

FIXTURE = conftest.DEEPLAB2_FIXTURES / 'max_deeplab_s'
_TYPES = trainer_pb2.InstanceDiscriminationOptions
_PQ = trainer_pb2.PQStyleLossOptions
COCO = dataset_info.COCO_PANOPTIC
# The Must-show tolerance, relative.
RTOL = 1e-4


@pytest.fixture(scope='module')
def fixture():
  conftest.require_shared(FIXTURE, "DeepLab2's fixtures")
  outputs = dict(np.load(FIXTURE / 'outputs.npz'))
  truth = dict(np.load(FIXTURE / 'loss_ground_truth.npz'))
  reference = json.loads((FIXTURE / 'losses.json').read_text())
  return outputs, truth, reference


def _our_outputs(deeplab2_outputs):
  """DeepLab2's output tensors in our keys and class order."""
  class_logits = deeplab2_outputs['transformer_class_logits']
  return {
      common.MASK_LOGITS: deeplab2_outputs['pixel_space_mask_logits'],
      # DeepLab2: [thing + stuff classes, void]; ours: [void, classes].
      common.CLASS_LOGITS: np.concatenate(
          [class_logits[..., -1:], class_logits[..., :-1]], axis=-1),
      common.PIXEL_FEATURES: deeplab2_outputs['pixel_space_normalized_feature'],
      common.SEMANTIC_LOGITS: deeplab2_outputs['semantic_logits'],
  }


def _our_ground_truth(truth):
  """Our targets of DeepLab2's panoptic label, with a batch dimension."""
  gt = targets_lib.compute_targets(truth['panoptic_label'], COCO,
                                   max_num_masks=128)
  return {key: value[tf.newaxis] for key, value in gt.items()}


def _deeplab2_rows(truth, height, width):
  """[h w] DeepLab2's ground-truth row of each output pixel, -1 on void.

  Rows 0-127 are thing ids, row 128 + j is stuff class 81 + j (COCO).
  """
  thing_id = truth['thing_id_mask_gt'][0, ::4, ::4]
  semantic = truth['semantic_gt'][0, ::4, ::4]
  assert thing_id.shape == (height, width)
  num_things = sum(COCO.thing_mask)
  stuff_row = 128 + semantic - (num_things + 1)
  is_stuff = (semantic != dataset_info.VOID) & ~np.take(COCO.thing_mask,
                                                        semantic)
  rows = np.where(thing_id >= 0, thing_id, np.where(is_stuff, stuff_row, -1))
  return rows.reshape(-1)


def _deeplab2_channel(truth, row: int) -> int:
  """DeepLab2's class-logit channel of a ground-truth row: c - 1 for its
  class c (COCO things 1-80, then stuff 81-133; void is the last channel)."""
  if row < 128:
    return int(truth['thing_id_class_gt'][0, row]) - 1
  return sum(COCO.thing_mask) + row - 128


def _row_of_each_mask(targets, truth):
  """{our mask k: DeepLab2's row} for our valid masks, paired by pixels."""
  rows = _deeplab2_rows(truth, targets.height, targets.width)
  mask_id = targets.mask_id.numpy()[0]
  pairs = {}
  for k in np.flatnonzero(targets.valid.numpy()[0]):
    mask_rows = np.unique(rows[mask_id == k])
    assert len(mask_rows) == 1, (k, mask_rows)
    pairs[k] = int(mask_rows[0])
    # The same pixels, not only overlapping ones.
    np.testing.assert_array_equal(rows == pairs[k], mask_id == k)
  return pairs


def _deeplab2_assignment(targets, truth, reference):
  """[1, K, N] DeepLab2's recorded matching, on our mask indices."""
  slot_of_row = {m['gt_mask']: m['slot'] for m in reference['matching']}
  num_masks = targets.mask_class.shape[-1]
  assignment = np.zeros([1, num_masks, 128], np.float32)
  for k, row in _row_of_each_mask(targets, truth).items():
    assignment[0, k, slot_of_row[row]] = 1.0
  return tf.constant(assignment)


def _options(reference, discrimination=_TYPES.MASK_CENTER,
             sample_count=4096, unmatched_weight=_PQ.VOID_RATIO):
  """Our loss options with DeepLab2's settings from losses.json."""
  settings = reference['settings']
  weights = settings['loss_options']
  experiment = config_pb2.ExperimentOptions()
  loss = experiment.trainer_options.loss_options
  loss.pq_style_loss.weight = weights['pq_style_loss.weight']
  loss.pq_style_loss.alpha = settings['focal_loss_alpha']
  loss.pq_style_loss.unmatched_weight = unmatched_weight
  loss.mask_id_cross_entropy_loss.weight = weights[
      'mask_id_cross_entropy_loss.weight']
  discrimination_options = loss.instance_discrimination_loss
  discrimination_options.weight = weights['instance_discrimination_loss.weight']
  discrimination_options.type = discrimination
  discrimination_options.temperature = settings[
      'instance_discrimination_temperature']
  discrimination_options.sample_count = sample_count
  loss.semantic_loss.weight = weights['semantic_loss.weight']
  loss.mask_approximation_loss.weight = 0.0  # CMT-DeepLab only.
  loss.deep_supervision = False  # DeepLab2's config: no auxiliary outputs.
  return experiment


def _relative(ours, theirs):
  return abs(float(ours) - theirs) / abs(theirs)


def test_ground_truth_conventions_agree(fixture):
  """Our targets at 33 x 33 hold DeepLab2's 12 masks, pixel for pixel."""
  outputs, truth, reference = fixture
  gt = _our_ground_truth(truth)
  np.testing.assert_array_equal(gt[common.GT_SEMANTIC], truth['semantic_gt'])
  targets = gt_lib.mask_targets(gt, 33, 33)
  pairs = _row_of_each_mask(targets, truth)
  assert sorted(pairs.values()) == sorted(
      m['gt_mask'] for m in reference['matching'])
  ground_truth = reference['ground_truth']
  assert int(targets.labelled.numpy().sum()) == ground_truth[
      'non_void_pixels_33']
  thing_pixels = (targets.one_hot.numpy()[0]
                  @ targets.is_thing.numpy()[0]).sum()
  assert thing_pixels == ground_truth['thing_pixels_33']
  assert outputs['pixel_space_mask_logits'].shape[1:3] == (33, 33)


def test_losses_equal_deeplab2_with_its_matching(fixture):
  """Semantic, mask-center discrimination, mask-ID and the PQ-style total."""
  outputs, truth, reference = fixture
  gt = _our_ground_truth(truth)
  ours = _our_outputs(outputs)
  targets = gt_lib.mask_targets(gt, 33, 33)
  assignment = _deeplab2_assignment(targets, truth, reference)
  loss_fn = builder.build_loss(_options(reference), COCO)
  losses = loss_fn(gt, ours, assignment=assignment)
  theirs = reference['losses']
  for name in (common.LOSS_SEMANTIC, common.LOSS_INSTANCE_DISCRIMINATION,
               common.LOSS_MASK_ID):
    assert _relative(losses[name], theirs[name]) < RTOL, name
  # Our PQ-style loss is DeepLab2's class term plus its mask dice term.
  pq_style_total = (theirs['pq_style_loss_class_term']
                    + theirs['pq_style_loss_mask_dice_term'])
  assert _relative(losses[common.LOSS_PQ_STYLE], pq_style_total) < RTOL
  assert _relative(losses[common.LOSS_TOTAL], theirs['total_loss']) < RTOL
  assert float(losses[common.LOSS_MASK_APPROXIMATION]) == 0.0


def _our_matching(fixture, impose_deeplab2s: bool):
  """(our outputs, targets at 33 x 33, the matching: our Hungarian one, or
  DeepLab2's imposed)."""
  outputs, truth, reference = fixture
  ours = _our_outputs(outputs)
  targets = gt_lib.mask_targets(_our_ground_truth(truth), 33, 33)
  assignment = (_deeplab2_assignment(targets, truth, reference)
                if impose_deeplab2s else None)
  return ours, targets, matcher.match(targets, ours[common.MASK_LOGITS],
                                      ours[common.CLASS_LOGITS], assignment)


def _pq_style_terms(fixture, unmatched_weight):
  """(class term, mask dice term) x the PQ-style weight, DeepLab2's matching."""
  ours, targets, matching = _our_matching(fixture, impose_deeplab2s=True)
  settings = fixture[2]['settings']
  weight = settings['loss_options']['pq_style_loss.weight']
  alpha = settings['focal_loss_alpha']
  class_term = pq_style.class_term(
      matching, targets, ours[common.CLASS_LOGITS], alpha,
      void_ratio_weight=unmatched_weight == _PQ.VOID_RATIO)
  mask_term = pq_style.mask_term(matching, targets, ours[common.MASK_LOGITS],
                                 alpha)
  return weight * float(class_term[0]), weight * float(mask_term[0])


def test_pq_style_terms_equal_deeplab2_with_its_matching(fixture):
  theirs = fixture[2]['losses']
  class_term, mask_term = _pq_style_terms(fixture, _PQ.VOID_RATIO)
  assert _relative(class_term, theirs['pq_style_loss_class_term']) < RTOL
  # Every matched class probability is below the 1e-5 floor here, so this
  # checks the dice losses and the floor (the class-probability weighting:
  # the sharpened case below).
  assert _relative(mask_term, theirs['pq_style_loss_mask_dice_term']) < RTOL


def _deeplab2_pq_style_reference(outputs, truth, reference):
  """(class term, mask dice term) of DeepLab2's `MaXDeepLabLoss` with its
  recorded matching, in float64 numpy and in DeepLab2's conventions (rows:
  128 thing ids + 53 stuff classes; class channel c - 1, void last), written
  from its source (`max_deeplab_loss.py`, `base_loss.py`):

    class term = w nonzero_mean_n(a_n v_n CE(class logits_n, y_n)),
      matched n: y_n its row's class, a_n = alpha, v_n = max(dice, 1e-5);
      others:    y_n void, a_n = 1 - alpha, v_n = max(void ratio, 1e-5);
    dice term  = w alpha / N sum_matched max(class prob, 1e-5)
                 (1 - (2 sum(p g) + 1) / (sum(p) + sum(g) + 1)),
  with p the slot's soft mask on labelled pixels and w the PQ-style weight.
  """
  settings = reference['settings']
  weight = settings['loss_options']['pq_style_loss.weight']
  alpha = settings['focal_loss_alpha']
  rows = _deeplab2_rows(truth, 33, 33)
  labelled = rows >= 0
  mask_logits = outputs['pixel_space_mask_logits'][0].astype(np.float64)
  num_slots = mask_logits.shape[-1]
  mask_probs = loss_reference.softmax(mask_logits.reshape(-1, num_slots))
  class_logits = outputs['transformer_class_logits'][0].astype(np.float64)
  class_probs = loss_reference.softmax(class_logits)
  void_channel = class_logits.shape[-1] - 1
  void_ratio = (mask_probs * ~labelled[:, None]).sum(0) / (
      mask_probs.sum(0) + 1e-5)
  class_terms = [(1 - alpha) * max(void_ratio[n], 1e-5) *
                 loss_reference.cross_entropy(class_logits[n], void_channel)
                 for n in range(num_slots)]
  dice_term = 0.0
  for match in reference['matching']:
    row, slot = match['gt_mask'], match['slot']
    column = _deeplab2_channel(truth, row)
    g = (rows == row).astype(np.float64)
    p = mask_probs[:, slot] * labelled
    dice = (g @ p) / ((g.sum() + p.sum()) / 2 + 1e-5)
    class_terms[slot] = alpha * max(dice, 1e-5) * (
        loss_reference.cross_entropy(class_logits[slot], column))
    dice_loss = 1 - (2 * (g @ p) + 1) / (p.sum() + g.sum() + 1)
    dice_term += max(class_probs[slot, column], 1e-5) * dice_loss
  return (weight * loss_reference.nonzero_mean(class_terms),
          weight * alpha / num_slots * dice_term)


def test_deeplab2_formula_reference_gives_deeplab2s_values(fixture):
  """The numpy reference above reproduces DeepLab2's stored PQ-style terms."""
  outputs, truth, reference = fixture
  class_term, dice_term = _deeplab2_pq_style_reference(outputs, truth,
                                                       reference)
  theirs = reference['losses']
  assert _relative(class_term, theirs['pq_style_loss_class_term']) < RTOL
  assert _relative(dice_term, theirs['pq_style_loss_mask_dice_term']) < RTOL


def _sharpened(outputs, truth, reference):
  """DeepLab2's outputs with the logit of each matched slot's class raised
  to the slot's largest other logit + 0, 0.5, ..., 5.5 (12 matched slots):
  matched class probabilities of about 0.5 to 1, far above the 1e-5 floor."""
  class_logits = outputs['transformer_class_logits'].copy()
  for index, match in enumerate(reference['matching']):
    slot = match['slot']
    column = _deeplab2_channel(truth, match['gt_mask'])
    others = np.delete(class_logits[0, slot], column)
    class_logits[0, slot, column] = others.max() + 0.5 * index
  return {**outputs, 'transformer_class_logits': class_logits}


def test_pq_style_terms_equal_deeplab2s_formula_above_the_floor(fixture):
  """DeepLab2's loss is stored for its own outputs only, where every matched
  class probability is below the floor; on a sharpened copy our PQ-style
  terms equal the reference of DeepLab2's formula checked above."""
  outputs, truth, reference = fixture
  sharpened = (_sharpened(outputs, truth, reference), truth, reference)
  _, _, matching = _our_matching(sharpened, impose_deeplab2s=True)
  matched = matching.matched.numpy()[0] > 0
  class_prob = matching.class_prob.numpy()[0][matched]
  assert len(class_prob) == 12 and class_prob.min() > 0.3, class_prob
  class_term, mask_term = _pq_style_terms(sharpened, _PQ.VOID_RATIO)
  theirs = _deeplab2_pq_style_reference(*sharpened)
  assert _relative(class_term, theirs[0]) < RTOL
  assert _relative(mask_term, theirs[1]) < RTOL
  # The class probabilities weight it: the floor alone gave 2e-6.
  assert mask_term > 1e4 * reference['losses']['pq_style_loss_mask_dice_term']


def test_void_ratio_is_deeplab2s_definition(fixture):
  """Soft mask on void pixels / (soft mask on all pixels + 1e-5)."""
  outputs, truth, _ = fixture
  _, _, matching = _our_matching(fixture, impose_deeplab2s=False)
  logits = outputs['pixel_space_mask_logits'][0].reshape(-1, 128)
  probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
  probs /= probs.sum(axis=-1, keepdims=True)
  void = (truth['semantic_gt'][0, ::4, ::4] == 0).reshape(-1, 1)
  expected = (probs * void).sum(0) / (probs.sum(0) + 1e-5)
  np.testing.assert_allclose(matching.void_ratio.numpy()[0], expected,
                             rtol=1e-4, atol=1e-7)


def test_constant_unmatched_weight_is_not_deeplab2s(fixture):
  """MaX-DeepLab's Eq. 9 (weight 1) differs: DeepLab2 uses the void ratio."""
  theirs = fixture[2]['losses']
  class_term, _ = _pq_style_terms(fixture, _PQ.CONSTANT)
  assert _relative(class_term, theirs['pq_style_loss_class_term']) > 0.1


def test_pixel_contrastive_equals_deeplab2_on_non_void_pixels(fixture):
  """DeepLab2 with k = 957 draws exactly the non-void pixels."""
  outputs, truth, reference = fixture
  variants = reference['variants']
  non_void = variants['pixel_contrastive_non_void_pixels']
  all_pixels = variants['pixel_contrastive_all_pixels']
  name = common.LOSS_INSTANCE_DISCRIMINATION
  gt = _our_ground_truth(truth)
  ours = _our_outputs(outputs)
  num_non_void = reference['ground_truth']['non_void_pixels_33']
  for sample_count in (num_non_void, 4096):
    loss_fn = builder.build_loss(
        _options(reference, _TYPES.PIXEL_CONTRASTIVE, sample_count), COCO)
    value = float(loss_fn(gt, ours)[name])
    assert _relative(value, non_void['losses'][name]) < RTOL, sample_count
  # On purpose: with more samples than non-void pixels (the paper's 4096
  # here) DeepLab2 also draws void pixels, which then enter every anchor's
  # softmax; ours never does (void and crowd are no features to cluster).
  assert _relative(value, all_pixels['losses'][name]) > 0.01


def test_our_hungarian_is_at_least_as_good_as_deeplab2s_tie_break(fixture):
  """Why DeepLab2's matching is imposed above: it is not the optimum here."""
  _, _, matching = _our_matching(fixture, impose_deeplab2s=False)
  score = float(tf.reduce_sum(matching.dice * matching.class_prob))
  check = fixture[2]['matching_check']
  assert score >= check['deeplab2_total_score']
  assert score == pytest.approx(check['optimal_total_score'], rel=1e-3)

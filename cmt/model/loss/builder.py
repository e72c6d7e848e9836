"""Builds the training loss of an experiment from `LossOptions`.

`build_loss(options, dataset_info)` returns `loss_fn(ground_truth, outputs)`
giving every named loss of `cmt.common` (LOSS_PQ_STYLE, LOSS_MASK_ID,
LOSS_INSTANCE_DISCRIMINATION, LOSS_SEMANTIC, LOSS_MASK_APPROXIMATION) as a
weighted float32 scalar averaged over the local batch, and LOSS_TOTAL, their
sum. A loss with weight 0, or one the model gives nothing to (mask
approximation without REFERENCE_POINTS), is reported as 0 and not computed.

The Hungarian matching is computed once, from the final mask and class
logits (or imposed: `loss_fn(ground_truth, outputs, assignment=...)`, to
compare with another implementation's losses on its own matching). With
`deep_supervision`, every entry of AUX_OUTPUTS (one per CMT layer, Sec. 3.3)
gets the PQ-style, mask-ID and, where it predicts reference points, mask
approximation losses again, against ground truth sampled at that layer's
own resolution and with the same matching; they add to the same named
losses.

Everything is TensorFlow with static shapes: the loss compiles under
`tf.function(jit_compile=True)`.
"""

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from cmt import common
from cmt import config_checks
from cmt.data import dataset_info as dataset_info_lib
from cmt.model.loss import cross_entropy
from cmt.model.loss import strided_targets as gt_lib
from cmt.model.loss import instance_discrimination
from cmt.model.loss import mask_approximation
from cmt.model.loss import matcher
from cmt.model.loss import pq_style
from cmt.protos import config_pb2
from cmt.protos import trainer_pb2

LossFn = Callable[[dict, dict], dict]

_OPTIONS_PATH = 'trainer_options.loss_options'
_InstanceDiscrimination = trainer_pb2.InstanceDiscriminationOptions
_PQStyle = trainer_pb2.PQStyleLossOptions

# The loss terms, in a fixed order; LOSS_TOTAL is their sum.
LOSS_NAMES = (common.LOSS_PQ_STYLE, common.LOSS_MASK_ID,
              common.LOSS_INSTANCE_DISCRIMINATION, common.LOSS_SEMANTIC,
              common.LOSS_MASK_APPROXIMATION)
# Every ground-truth feature the loss reads (the mask targets of all matched
# and discrimination terms, the semantic map of the semantic term).
GROUND_TRUTH_KEYS = gt_lib.MASK_TARGET_KEYS + (common.GT_SEMANTIC,)


@dataclasses.dataclass(frozen=True)
class LossSettings:
  """The validated contents of `LossOptions`."""
  pq_style_weight: float
  pq_style_alpha: float
  pq_style_void_ratio_weight: bool
  mask_id_weight: float
  instance_discrimination_weight: float
  instance_discrimination_type: int
  instance_discrimination_temperature: float
  sample_count: int
  sample_temperature: float
  semantic_weight: float
  mask_approximation_weight: float
  deep_supervision: bool


def parse_loss_options(loss_options: trainer_pb2.LossOptions) -> LossSettings:
  """Reads `LossOptions`, checked by `cmt.config_checks.loss_problems`."""
  problems = config_checks.loss_problems(loss_options)
  if problems:
    raise ValueError('; '.join(problems))
  pq = loss_options.pq_style_loss
  discrimination = loss_options.instance_discrimination_loss
  return LossSettings(
      pq_style_weight=float(pq.weight),
      pq_style_alpha=float(pq.alpha),
      pq_style_void_ratio_weight=pq.unmatched_weight == _PQStyle.VOID_RATIO,
      mask_id_weight=float(loss_options.mask_id_cross_entropy_loss.weight),
      instance_discrimination_weight=float(discrimination.weight),
      instance_discrimination_type=discrimination.type,
      instance_discrimination_temperature=float(discrimination.temperature),
      sample_count=int(discrimination.sample_count),
      sample_temperature=float(discrimination.sample_temperature),
      semantic_weight=float(loss_options.semantic_loss.weight),
      mask_approximation_weight=float(
          loss_options.mask_approximation_loss.weight),
      deep_supervision=bool(loss_options.deep_supervision))


def _require(outputs: dict, key: str, needed_by: str,
             where: str = 'model outputs') -> tf.Tensor:
  if key not in outputs:
    raise ValueError(f'{where} have no {key!r}, needed by {needed_by}; got '
                     f'keys {sorted(outputs)}')
  return outputs[key]


class PanopticLoss:
  """loss_fn(ground_truth, outputs) -> dict of named weighted losses."""

  def __init__(self, settings: LossSettings,
               dataset_info: dataset_info_lib.DatasetInfo):
    self.settings = settings
    self.num_classes = dataset_info.num_classes

  def _check_class_logits(self, class_logits: tf.Tensor, where: str):
    if class_logits.shape[-1] != self.num_classes + 1:
      raise ValueError(
          f'{where}: {common.CLASS_LOGITS} has {class_logits.shape[-1]} '
          f'classes; the dataset has {self.num_classes} + void')

  def _layers(self, outputs: dict) -> list[tuple[str, dict]]:
    """The final output and, with deep supervision, the auxiliary ones."""
    layers = [('model outputs', outputs)]
    if self.settings.deep_supervision:
      for index, layer in enumerate(outputs.get(common.AUX_OUTPUTS, ())):
        layers.append((f'{common.AUX_OUTPUTS}[{index}]', layer))
    return layers

  def __call__(self, ground_truth: dict, outputs: dict,
               assignment: Optional[tf.Tensor] = None) -> dict:
    """The named losses; `assignment` [B, K, N] replaces the Hungarian one."""
    s = self.settings
    per_image = {name: [] for name in LOSS_NAMES}
    targets_at = {}

    def targets_for(height: int, width: int) -> gt_lib.MaskTargets:
      if (height, width) not in targets_at:
        targets_at[height, width] = gt_lib.mask_targets(ground_truth, height,
                                                        width)
      return targets_at[height, width]

    if (s.pq_style_weight > 0 or s.mask_id_weight > 0
        or s.mask_approximation_weight > 0):
      self._add_matched_losses(per_image, outputs, targets_for, assignment)
    if s.instance_discrimination_weight > 0:
      per_image[common.LOSS_INSTANCE_DISCRIMINATION].append(
          self._instance_discrimination(outputs, targets_for))
    if s.semantic_weight > 0:
      per_image[common.LOSS_SEMANTIC].append(
          self._semantic(ground_truth, outputs))
    return self._weighted(per_image)

  def _add_matched_losses(self, per_image: dict, outputs: dict, targets_for,
                          assignment: Optional[tf.Tensor]):
    """The losses that read the Hungarian matching (computed once, on the
    final output): PQ-style, mask-ID and mask approximation, per layer."""
    s = self.settings
    mask_logits = _require(outputs, common.MASK_LOGITS, 'the matching')
    class_logits = _require(outputs, common.CLASS_LOGITS, 'the matching')
    self._check_class_logits(class_logits, 'model outputs')
    final_targets = targets_for(*mask_logits.shape[1:3])
    matching = matcher.match(final_targets, mask_logits, class_logits,
                             assignment)
    geometry: Optional[mask_approximation.MaskGeometry] = None
    for where, layer in self._layers(outputs):
      layer_mask_logits = _require(layer, common.MASK_LOGITS,
                                   'the PQ-style and mask-ID losses', where)
      layer_class_logits = _require(layer, common.CLASS_LOGITS,
                                    'the PQ-style loss', where)
      self._check_class_logits(layer_class_logits, where)
      targets = targets_for(*layer_mask_logits.shape[1:3])
      if s.pq_style_weight > 0:
        per_image[common.LOSS_PQ_STYLE].append(pq_style.pq_style_loss(
            matching, targets, layer_mask_logits, layer_class_logits,
            s.pq_style_alpha, s.pq_style_void_ratio_weight))
      if s.mask_id_weight > 0:
        per_image[common.LOSS_MASK_ID].append(
            cross_entropy.mask_id_cross_entropy(matching, targets,
                                                layer_mask_logits))
      if s.mask_approximation_weight > 0 and (
          common.REFERENCE_POINTS in layer):
        if geometry is None:
          geometry = mask_approximation.mask_geometry(final_targets)
        per_image[common.LOSS_MASK_APPROXIMATION].append(
            mask_approximation.mask_approximation_loss(
                matching, geometry, layer[common.REFERENCE_POINTS]))

  def _instance_discrimination(self, outputs: dict, targets_for) -> tf.Tensor:
    s = self.settings
    features = _require(outputs, common.PIXEL_FEATURES,
                        f'{_OPTIONS_PATH}.instance_discrimination_loss')
    targets = targets_for(*features.shape[1:3])
    if s.instance_discrimination_type == _InstanceDiscrimination.MASK_CENTER:
      return instance_discrimination.mask_center_loss(
          features, targets, s.instance_discrimination_temperature)
    return instance_discrimination.pixel_contrastive_loss(
        features, targets, s.instance_discrimination_temperature,
        s.sample_count, s.sample_temperature)

  def _semantic(self, ground_truth: dict, outputs: dict) -> tf.Tensor:
    semantic_logits = _require(outputs, common.SEMANTIC_LOGITS,
                               f'{_OPTIONS_PATH}.semantic_loss')
    if semantic_logits.shape[-1] != self.num_classes + 1:
      raise ValueError(
          f'{common.SEMANTIC_LOGITS} has {semantic_logits.shape[-1]} '
          f'classes; the dataset has {self.num_classes} + void')
    return cross_entropy.semantic_cross_entropy(
        ground_truth[common.GT_SEMANTIC], semantic_logits)

  def _weighted(self, per_image: dict) -> dict:
    """Each loss: its weight x the batch mean of its terms (0 without
    terms); LOSS_TOTAL their sum."""
    s = self.settings
    weights = {
        common.LOSS_PQ_STYLE: s.pq_style_weight,
        common.LOSS_MASK_ID: s.mask_id_weight,
        common.LOSS_INSTANCE_DISCRIMINATION: s.instance_discrimination_weight,
        common.LOSS_SEMANTIC: s.semantic_weight,
        common.LOSS_MASK_APPROXIMATION: s.mask_approximation_weight,
    }
    losses = {}
    for name in LOSS_NAMES:
      if per_image[name]:
        losses[name] = weights[name] * tf.reduce_mean(tf.add_n(per_image[name]))
      else:
        losses[name] = tf.constant(0.0, tf.float32)
    losses[common.LOSS_TOTAL] = tf.add_n([losses[n] for n in LOSS_NAMES])
    return losses


def build_loss(options: config_pb2.ExperimentOptions,
               dataset_info: dataset_info_lib.DatasetInfo) -> LossFn:
  """The loss of an experiment: loss_fn(ground_truth, outputs) -> dict."""
  settings = parse_loss_options(options.trainer_options.loss_options)
  return PanopticLoss(settings, dataset_info)

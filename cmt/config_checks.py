"""Every check an experiment config must pass before anything is built.

One set of checks in one place, pure Python (no TensorFlow): `cmt-config
validate`, `cmt.config.load_config` and the build path of `cmt-train`,
`cmt-export`, `cmt-predict` and `cmt-visualize` (`require_runnable`) all
call `check_options`, so a config that validates is one that builds and
runs. Each problem names the field path, the value and what is allowed.

A *purpose* says what the run will do with the config and so which parts it
needs: 'train' (train_dataset_options, trainer_options), 'eval'
(eval_dataset_options with records to read, evaluator_options) and 'export'
(eval_dataset_options for the crop and resize, evaluator_options; also
`cmt-predict` / `cmt-visualize`). Parts that are present are checked
whatever the purposes.
"""

import math
from typing import Iterable, List, Optional, Sequence

from cmt.data import dataset_info as dataset_info_lib
from cmt.protos import config_pb2
from cmt.protos import evaluator_pb2
from cmt.protos import model_pb2
from cmt.protos import trainer_pb2

TRAIN, EVAL, EXPORT = 'train', 'eval', 'export'
ALL_PURPOSES = (TRAIN, EVAL, EXPORT)
# cmt-train --mode -> purposes.
MODE_PURPOSES = {
    'train': (TRAIN,),
    'eval': (EVAL,),
    'train_and_eval': (TRAIN, EVAL),
    'continuous_eval': (EVAL,),
}

# Bottleneck widths of Axial-ResNet stages 2-5 (cmt.model.backbone).
BASE_FILTERS = (64, 128, 256, 512)
# Heads of every axial-attention block (Axial-DeepLab / MaX-DeepLab: 8).
AXIAL_HEADS = 8

_Backbone = model_pb2.BackboneOptions
_Solver = trainer_pb2.SolverOptions
_Evaluator = evaluator_pb2.EvaluatorOptions


def scaled(channels: int, width_multiplier: float) -> int:
  """A channel count scaled by `backbone.width_multiplier` (at least 1)."""
  return max(1, int(round(channels * width_multiplier)))


def transformer_width_problem(memory_channels: int,
                              num_heads: int) -> Optional[str]:
  """The dual-path layer's keys are memory_channels / 2 wide and its values
  memory_channels, both split over num_heads."""
  if num_heads < 1:
    return f'model_options.transformer.num_heads = {num_heads}: must be >= 1'
  if memory_channels < 2 or memory_channels % 2 or (
      memory_channels // 2) % num_heads:
    step = 2 * num_heads
    example = step * max(1, -(-memory_channels // step))
    return (f'model_options.transformer.memory_channels = {memory_channels}: '
            'must be even with memory_channels / 2 divisible by num_heads '
            f'({num_heads}), e.g. {example}')
  return None


class _Problems:
  """Collects 'field = value: what is allowed' lines."""

  def __init__(self):
    self.lines: List[str] = []

  def add(self, field: str, value, requirement: str):
    self.lines.append(f'{field} = {_show(value)}: {requirement}')

  def require(self, ok: bool, field: str, value, requirement: str):
    if not ok:
      self.add(field, value, requirement)

  def at_least(self, field: str, value, minimum):
    self.require(_finite(value) and value >= minimum, field, value,
                 f'must be >= {minimum}')

  def in_range(self, field: str, value, low, high, high_open=False):
    ok = _finite(value) and low <= value and (
        value < high if high_open else value <= high)
    self.require(ok, field, value,
                 f'must lie in [{low}, {high}{")" if high_open else "]"}')

  def positive(self, field: str, value):
    self.require(_finite(value) and value > 0, field, value,
                 'must be a finite number > 0')

  def enum_set(self, field: str, value, enum_type, unset: int):
    if value == unset:
      names = [v.name for v in enum_type.values if v.number != unset]
      self.add(field, enum_type.values_by_number[value].name,
               'choose ' + ' or '.join(names))


def _show(value):
  if isinstance(value, float):
    return f'{value:g}'
  return repr(value) if isinstance(value, str) else value


def _finite(value) -> bool:
  return not isinstance(value, float) or math.isfinite(value)


def check_options(options: config_pb2.ExperimentOptions,
                  purposes: Iterable[str] = ()) -> List[str]:
  """Problems of `options` for `purposes` (empty list: it runs)."""
  purposes = tuple(purposes)
  unknown = set(purposes) - set(ALL_PURPOSES)
  if unknown:
    raise ValueError(f'unknown purposes {sorted(unknown)}')
  problems = _Problems()
  if purposes and not options.ListFields():
    problems.lines.append(
        'the config sets nothing; an experiment needs at least '
        + _needed_sections(purposes) + ' (dataset or categories_json, '
        'file_pattern, crop_size)')
    return problems.lines
  _check_model(options.model_options, problems)
  for name, used_for in (('train_dataset_options', (TRAIN,)),
                         ('eval_dataset_options', (EVAL, EXPORT))):
    needed = [p for p in purposes if p in used_for]
    if not options.HasField(name):
      if needed:
        problems.lines.append(
            f'{name}: missing; needed to {" and ".join(needed)}')
      continue
    dataset = getattr(options, name)
    problems.lines.extend(dataset_problems(dataset, name, needed))
    _check_dataset_with_model(dataset, name, options.model_options, problems)
  _check_trainer(options.trainer_options, problems)
  problems.lines.extend(evaluator_problems(options.evaluator_options))
  return problems.lines


def _needed_sections(purposes: Sequence[str]) -> str:
  names = []
  if TRAIN in purposes:
    names.append('train_dataset_options')
  if EVAL in purposes or EXPORT in purposes:
    names.append('eval_dataset_options')
  return ' and '.join(names)


# ---- model_options -------------------------------------------------------

def _check_model(model: model_pb2.ModelOptions, problems: _Problems):
  backbone = model.backbone
  path = 'model_options.backbone'
  if backbone.num_blocks:
    problems.require(len(backbone.num_blocks) == 4 and
                     min(backbone.num_blocks) >= 1, f'{path}.num_blocks',
                     list(backbone.num_blocks),
                     'must list 4 counts >= 1 (stages 2-5), or be empty')
  else:
    problems.enum_set(f'{path}.name', backbone.name, _Backbone.Name.DESCRIPTOR,
                      _Backbone.NAME_UNSPECIFIED)
  problems.enum_set(f'{path}.activation', backbone.activation,
                    model_pb2.Activation.DESCRIPTOR,
                    model_pb2.ACTIVATION_UNSPECIFIED)
  problems.in_range(f'{path}.drop_path_rate', backbone.drop_path_rate, 0, 1,
                    high_open=True)
  problems.enum_set(f'{path}.drop_path_schedule', backbone.drop_path_schedule,
                    _Backbone.DropPathSchedule.DESCRIPTOR,
                    _Backbone.DROP_PATH_SCHEDULE_UNSPECIFIED)
  problems.require(backbone.output_stride in (16, 32),
                   f'{path}.output_stride', backbone.output_stride,
                   'must be 16 or 32')
  axial = backbone.use_axial_beyond_stride
  problems.require(axial >= 0 and not axial & (axial - 1),
                   f'{path}.use_axial_beyond_stride', axial,
                   'must be 0 (off) or a power of 2')
  problems.at_least(f'{path}.axial_query_region',
                    backbone.axial_query_region, 1)
  problems.positive(f'{path}.width_multiplier', backbone.width_multiplier)
  if _finite(backbone.width_multiplier) and backbone.width_multiplier > 0:
    for stage in sorted(_axial_stages(model)):
      filters = scaled(BASE_FILTERS[stage - 2], backbone.width_multiplier)
      problems.require(
          filters % AXIAL_HEADS == 0, f'{path}.width_multiplier',
          backbone.width_multiplier,
          f'gives stage-{stage} axial blocks {filters} channels, which '
          f'{AXIAL_HEADS} attention heads cannot split (need a multiple of '
          f'{AXIAL_HEADS}: {BASE_FILTERS[stage - 2]} x width_multiplier)')

  decoder = model.decoder
  for i, stage in enumerate(decoder.transformer_stages):
    where = f'model_options.decoder.transformer_stages[{i}]'
    problems.require(stage.backbone_stage in (4, 5),
                     f'{where}.backbone_stage', stage.backbone_stage,
                     'must be 4 or 5')
    problems.at_least(f'{where}.num_blocks', stage.num_blocks, 1)
  high = decoder.high_resolution_output_stride
  problems.require(high in (4, 8) and high <= backbone.output_stride,
                   'model_options.decoder.high_resolution_output_stride',
                   high, 'must be 4 or 8')
  if model.recursive_feature_network:
    problems.require(high == 4,
                     'model_options.decoder.high_resolution_output_stride',
                     high, 'must be 4 with recursive_feature_network (the '
                     'two stacks meet at stride 4)')

  transformer = model.transformer
  path = 'model_options.transformer'
  problems.at_least(f'{path}.num_cluster_centers',
                    transformer.num_cluster_centers, 1)
  problems.require(
      transformer.num_cluster_centers < dataset_info_lib.LABEL_DIVISOR,
      f'{path}.num_cluster_centers', transformer.num_cluster_centers,
      f'must be < label_divisor {dataset_info_lib.LABEL_DIVISOR} (one '
      'class could get more instances than its labels can number)')
  width = transformer_width_problem(transformer.memory_channels,
                                    transformer.num_heads)
  if width:
    problems.lines.append(width)
  problems.at_least(f'{path}.feed_forward_channels',
                    transformer.feed_forward_channels, 1)

  clustering = model.clustering
  path = 'model_options.clustering'
  problems.require(not clustering.coord_conv or clustering.reference_mask,
                   f'{path}.coord_conv', True, 'needs reference_mask: the '
                   'centers are concatenated with r^c (Eq. 11)')
  if clustering.reference_mask:
    problems.at_least(f'{path}.num_reference_points',
                      clustering.num_reference_points, 1)

  heads = model.heads
  path = 'model_options.heads'
  problems.at_least(f'{path}.pixel_space_head_channels',
                    heads.pixel_space_head_channels, 1)
  problems.at_least(f'{path}.pixel_space_output_channels',
                    heads.pixel_space_output_channels, 1)
  if heads.auxiliary_semantic_head:
    for field in ('semantic_head_channels', 'res3_projection_channels',
                  'res2_projection_channels'):
      problems.at_least(f'{path}.{field}', getattr(heads, field), 1)
  problems.require(_finite(heads.class_void_prior) and
                   0 < heads.class_void_prior < 1,
                   f'{path}.class_void_prior', heads.class_void_prior,
                   'must lie in (0, 1)')
  problems.require(_finite(heads.mask_logits_bn_gamma),
                   f'{path}.mask_logits_bn_gamma', heads.mask_logits_bn_gamma,
                   'must be a finite number')
  if model.initial_checkpoint:
    problems.enum_set('model_options.restore_scope', model.restore_scope,
                      model_pb2.ModelOptions.RestoreScope.DESCRIPTOR,
                      model_pb2.ModelOptions.RESTORE_SCOPE_UNSPECIFIED)


def _transformer_stages(model) -> List[int]:
  """Backbone stages of the decoder's dual-path axial blocks (MaX-S: [5])."""
  return [s.backbone_stage for s in model.decoder.transformer_stages] or [5]


def _backbone_block_strides(backbone):
  """(stage, stride of the block's input) of every backbone block, as
  `cmt.model.backbone.axial_resnet` lays them out (stem at stride 2)."""
  counts = (list(backbone.num_blocks) if backbone.num_blocks else
            {_Backbone.AXIAL_RESNET_50: [3, 4, 6, 3],
             _Backbone.AXIAL_RESNET_104: [3, 4, 24, 3]}.get(backbone.name, []))
  input_stride = 2
  for stage, count in zip(range(2, 6), counts):
    for index in range(count):
      yield stage, input_stride if index == 0 else 2 * input_stride
    input_stride *= 2


def _axial_stages(model) -> dict:
  """Stage -> smallest stride at which an axial-attention block runs."""
  backbone = model.backbone
  stride = backbone.output_stride if backbone.output_stride in (16, 32) else 16
  found = {}

  def note(stage, at):
    found[stage] = min(found.get(stage, at), at)

  axial = backbone.use_axial_beyond_stride
  for stage, current in _backbone_block_strides(backbone):
    if 0 < axial <= current:
      note(stage, min(current, stride))
  for stage in _transformer_stages(model):
    if stage in (4, 5):
      note(stage, min(2 ** stage, stride))
  return found


# ---- datasets --------------------------------------------------------------

def crop_problem(crop: Sequence[int], output_stride: int) -> Optional[str]:
  """Crops are output_stride * k + 1 (DeepLab2's rule): every stride of the
  network then maps the crop's corners onto feature-map corners, which the
  aligned-corner resizes and the strided label sampling of the losses
  assume."""
  bad = [c for c in crop if c < output_stride + 1 or (c - 1) % output_stride]
  if bad:
    low = max(1, (bad[0] - 1) // output_stride)
    return (f'each side must be output_stride * k + 1 '
            f'(output_stride {output_stride}: e.g. {low * output_stride + 1} '
            f'or {(low + 1) * output_stride + 1})')
  return None


def dataset_problems(dataset, name: str,
                     purposes: Sequence[str] = ()) -> List[str]:
  """Problems of one DatasetOptions on its own (also read by the input
  pipeline); `purposes` those of the run that use it."""
  problems = _Problems()
  if dataset.dataset and dataset.categories_json:
    problems.lines.append(f'{name}: set dataset (built-in) or '
                          'categories_json (custom), not both')
  elif not dataset.dataset and not dataset.categories_json:
    problems.lines.append(f'{name}: set dataset (e.g. "coco_panoptic") or '
                          'categories_json')
  elif dataset.dataset:
    problems.require(dataset.dataset in dataset_info_lib.BUILT_IN,
                     f'{name}.dataset', dataset.dataset,
                     f'built in: {", ".join(sorted(dataset_info_lib.BUILT_IN))}'
                     '; or set categories_json')
  if TRAIN in purposes or EVAL in purposes:
    problems.require(bool(dataset.file_pattern) and
                     all(dataset.file_pattern), f'{name}.file_pattern',
                     list(dataset.file_pattern),
                     'needs one or more non-empty TFRecord paths or globs')
  crop = list(dataset.crop_size)
  if (crop or purposes) and (len(crop) != 2 or min(crop) < 1):
    problems.add(f'{name}.crop_size', crop, 'needs 2 values [height, width]')
  problems.at_least(f'{name}.batch_size', dataset.batch_size, 1)
  problems.at_least(f'{name}.min_resize_value', dataset.min_resize_value, 0)
  problems.at_least(f'{name}.max_resize_value', dataset.max_resize_value, 0)
  if 0 < dataset.max_resize_value < dataset.min_resize_value:
    problems.add(f'{name}.min_resize_value', dataset.min_resize_value,
                 f'must be <= max_resize_value ({dataset.max_resize_value})')
  evaluated = (EVAL in purposes or EXPORT in purposes or
               name == 'eval_dataset_options')
  if evaluated and len(crop) == 2:
    problems.require(dataset.max_resize_value <= min(crop),
                     f'{name}.max_resize_value', dataset.max_resize_value,
                     f'must be <= the crop {crop}: evaluation images must fit '
                     'the crop')
  problems.at_least(f'{name}.max_num_masks', dataset.max_num_masks, 1)
  problems.at_least(f'{name}.seed', dataset.seed, 0)
  problems.at_least(f'{name}.shuffle_buffer_size',
                    dataset.shuffle_buffer_size, 1)
  if dataset.HasField('augmentations'):
    _check_augmentations(dataset.augmentations, f'{name}.augmentations',
                         problems)
  return problems.lines


def _check_dataset_with_model(dataset, name: str, model,
                              problems: _Problems):
  """What a dataset must agree on with the model: the crop and the masks."""
  stride = model.backbone.output_stride
  crop = list(dataset.crop_size)
  if len(crop) == 2 and min(crop) >= 1 and stride in (16, 32):
    problem = crop_problem(crop, stride)
    if problem:
      problems.add(f'{name}.crop_size', crop, problem)
    else:
      _check_axial_reach(crop, model, name, problems)
  centers = model.transformer.num_cluster_centers
  # Only training matches masks to centers; evaluation reads no matching.
  problems.require(
      name != 'train_dataset_options' or dataset.max_num_masks <= centers,
      f'{name}.max_num_masks',
      dataset.max_num_masks, 'must be <= model_options.transformer.'
      f'num_cluster_centers ({centers}): each ground-truth mask is matched '
      'to its own cluster center')


def _check_axial_reach(crop, model, name, problems):
  """Axial attention spans a whole axis of at most axial_query_region."""
  region = model.backbone.axial_query_region
  for stage, stride in sorted(_axial_stages(model).items()):
    length = (max(crop) - 1) // stride + 1
    if length > region:
      problems.add(f'{name}.crop_size', crop,
                   f'stage-{stage} axial attention at stride {stride} spans '
                   f'{length} positions, more than model_options.backbone.'
                   f'axial_query_region ({region}); local axial attention is '
                   'not implemented')
      return


def _check_augmentations(augmentations, path: str, problems: _Problems):
  low, high = augmentations.min_scale_factor, augmentations.max_scale_factor
  problems.require(_finite(low) and _finite(high) and 0 < low <= high,
                   f'{path}.min_scale_factor', low,
                   f'need 0 < min_scale_factor <= max_scale_factor ({high:g})')
  problems.require(_finite(augmentations.scale_factor_step_size) and
                   augmentations.scale_factor_step_size >= 0,
                   f'{path}.scale_factor_step_size',
                   augmentations.scale_factor_step_size,
                   'must be >= 0 (0 = continuous)')
  problems.in_range(f'{path}.flip_probability',
                    augmentations.flip_probability, 0, 1)


# ---- trainer_options -------------------------------------------------------

def _check_trainer(trainer, problems: _Problems):
  for field in ('save_checkpoints_steps', 'save_summaries_steps',
                'steps_per_loop', 'num_checkpoints_to_keep'):
    problems.at_least(f'trainer_options.{field}', getattr(trainer, field), 1)
  if trainer.steps_per_loop >= 1 and (
      trainer.save_summaries_steps % trainer.steps_per_loop):
    problems.add('trainer_options.save_summaries_steps',
                 trainer.save_summaries_steps,
                 f'must be a multiple of steps_per_loop '
                 f'({trainer.steps_per_loop})')
  problems.lines.extend(loss_problems(trainer.loss_options))
  _check_solver(trainer.solver_options, problems)


def loss_problems(loss: trainer_pb2.LossOptions) -> List[str]:
  """Problems of `trainer_options.loss_options` (also read by the loss
  builder)."""
  problems = _Problems()
  path = 'trainer_options.loss_options'
  for field in ('pq_style_loss', 'mask_id_cross_entropy_loss',
                'instance_discrimination_loss', 'semantic_loss',
                'mask_approximation_loss'):
    weight = getattr(loss, field).weight
    problems.require(_finite(weight) and weight >= 0,
                     f'{path}.{field}.weight', weight,
                     'must be a finite number >= 0')
  pq = loss.pq_style_loss
  problems.in_range(f'{path}.pq_style_loss.alpha', pq.alpha, 0, 1)
  problems.enum_set(f'{path}.pq_style_loss.unmatched_weight',
                    pq.unmatched_weight,
                    trainer_pb2.PQStyleLossOptions.UnmatchedWeight.DESCRIPTOR,
                    trainer_pb2.PQStyleLossOptions.UNMATCHED_WEIGHT_UNSPECIFIED)
  discrimination = loss.instance_discrimination_loss
  where = f'{path}.instance_discrimination_loss'
  kind = trainer_pb2.InstanceDiscriminationOptions
  problems.enum_set(f'{where}.type', discrimination.type,
                    kind.Type.DESCRIPTOR, kind.TYPE_UNSPECIFIED)
  problems.positive(f'{where}.temperature', discrimination.temperature)
  problems.at_least(f'{where}.sample_count', discrimination.sample_count, 1)
  problems.require(_finite(discrimination.sample_temperature) and
                   discrimination.sample_temperature >= 0,
                   f'{where}.sample_temperature',
                   discrimination.sample_temperature,
                   'must be a finite number >= 0')
  return problems.lines


def _check_solver(solver, problems: _Problems):
  path = 'trainer_options.solver_options'
  problems.enum_set(f'{path}.optimizer', solver.optimizer,
                    _Solver.Optimizer.DESCRIPTOR,
                    _Solver.OPTIMIZER_UNSPECIFIED)
  problems.enum_set(f'{path}.precision', solver.precision,
                    _Solver.Precision.DESCRIPTOR,
                    _Solver.PRECISION_UNSPECIFIED)
  problems.positive(f'{path}.base_learning_rate', solver.base_learning_rate)
  problems.positive(f'{path}.poly_learning_power', solver.poly_learning_power)
  for field in ('poly_end_learning_rate', 'backbone_learning_rate_multiplier',
                'weight_decay', 'gradient_clip_norm'):
    value = getattr(solver, field)
    problems.require(_finite(value) and value >= 0, f'{path}.{field}', value,
                     'must be a finite number >= 0')
  steps = solver.training_number_of_steps
  problems.at_least(f'{path}.training_number_of_steps', steps, 1)
  problems.require(0 <= solver.warmup_steps < max(steps, 1),
                   f'{path}.warmup_steps', solver.warmup_steps,
                   f'must be >= 0 and < training_number_of_steps ({steps})')
  problems.in_range(f'{path}.batchnorm_momentum', solver.batchnorm_momentum,
                    0, 1, high_open=True)
  problems.positive(f'{path}.batchnorm_epsilon', solver.batchnorm_epsilon)
  for field in ('adam_beta_1', 'adam_beta_2', 'sgd_momentum'):
    problems.in_range(f'{path}.{field}', getattr(solver, field), 0, 1,
                      high_open=True)
  problems.positive(f'{path}.adam_epsilon', solver.adam_epsilon)


# ---- evaluator_options -----------------------------------------------------

def evaluator_problems(evaluator: _Evaluator) -> List[str]:
  """Problems of `evaluator_options` (also read by post-processing)."""
  problems = _Problems()
  path = 'evaluator_options'
  problems.enum_set(f'{path}.post_processing', evaluator.post_processing,
                    _Evaluator.PostProcessing.DESCRIPTOR,
                    _Evaluator.POST_PROCESSING_UNSPECIFIED)
  for field in ('thing_class_threshold', 'stuff_class_threshold',
                'pixel_confidence_threshold', 'overlap_threshold'):
    problems.in_range(f'{path}.{field}', getattr(evaluator, field), 0, 1)
  for field in ('class_score_power', 'mask_score_power'):
    value = getattr(evaluator, field)
    problems.require(_finite(value) and value >= 0, f'{path}.{field}', value,
                     'must be a finite number >= 0')
  for field in ('thing_area_limit', 'stuff_area_limit', 'num_summary_images',
                'eval_steps', 'eval_interval_steps'):
    problems.at_least(f'{path}.{field}', getattr(evaluator, field), 0)
  return problems.lines

"""The checks of `model_options` and of what a dataset must agree on with
the model (crop, masks), pure Python.

Part of the config checks (`cmt.config_checks` runs them), and run again
by `cmt.model.builder.build_model` before any layer is built: the layers
do not repeat them. The shape rules (widths, block layout, strides) are
`cmt.model.spec`'s: these checks build the spec and read it.
"""

from typing import List, Optional, Sequence

from cmt.data import dataset_info as dataset_info_lib
from cmt.model import spec as spec_lib
from cmt.problems import finite
from cmt.problems import Problems
from cmt.protos import model_pb2

_Backbone = model_pb2.BackboneOptions


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


# ---- model_options -------------------------------------------------------

def model_problems(model: model_pb2.ModelOptions) -> List[str]:
  """Every field of `model_options`, and the widths the layers split."""
  problems = Problems()
  _check_backbone(model, problems)
  _check_decoder(model, problems)
  _check_transformer(model, problems)
  _check_heads(model, problems)
  _check_partial_start(model, problems)
  width = model.backbone.width_multiplier
  spec = model_spec(model)
  if spec is not None and finite(width) and width > 0:
    _check_axial_heads(spec, problems)
  return problems.lines


def model_spec(model) -> Optional[spec_lib.ModelSpec]:
  """The spec of `model`, or None where its fields leave no layout (the
  field checks name them)."""
  try:
    return spec_lib.ModelSpec.from_options(model)
  except (ValueError, ArithmeticError):
    return None


def _check_backbone(model, problems: Problems):
  backbone = model.backbone
  path = 'model_options.backbone'
  if not backbone.num_blocks:
    problems.enum_set(f'{path}.name', backbone.name, _Backbone.Name.DESCRIPTOR,
                      _Backbone.NAME_UNSPECIFIED)
  for shared_rule in (spec_lib.num_blocks_from_options,
                      spec_lib.stem_width_multiplier):
    try:
      shared_rule(backbone)
    except ValueError as error:
      # An unset name without num_blocks is named by enum_set above.
      if backbone.num_blocks or backbone.name != _Backbone.NAME_UNSPECIFIED:
        problems.note(str(error))
  problems.enum_set(f'{path}.activation', backbone.activation,
                    model_pb2.Activation.DESCRIPTOR,
                    model_pb2.ACTIVATION_UNSPECIFIED)
  problems.in_range(f'{path}.drop_path_rate', backbone.drop_path_rate, 0, 1,
                    high_open=True)
  problems.enum_set(f'{path}.drop_path_schedule', backbone.drop_path_schedule,
                    _Backbone.DropPathSchedule.DESCRIPTOR,
                    _Backbone.DROP_PATH_SCHEDULE_UNSPECIFIED)
  problems.require(backbone.output_stride in spec_lib.OUTPUT_STRIDES,
                   f'{path}.output_stride', backbone.output_stride,
                   'must be 16 or 32')
  axial = backbone.use_axial_beyond_stride
  problems.require(axial >= 0 and not axial & (axial - 1),
                   f'{path}.use_axial_beyond_stride', axial,
                   'must be 0 (off) or a power of 2')
  problems.at_least(f'{path}.axial_query_region',
                    backbone.axial_query_region, 1)
  problems.positive(f'{path}.width_multiplier', backbone.width_multiplier)


def _check_axial_heads(spec: spec_lib.ModelSpec, problems: Problems):
  """Every axial block's bottleneck splits over the attention heads."""
  backbone = spec.backbone
  heads = backbone.axial_heads
  for stage in sorted(spec.axial_strides()):
    filters = backbone.filters(stage)
    problems.require(
        filters % heads == 0, 'model_options.backbone.width_multiplier',
        backbone.width_multiplier,
        f'gives stage-{stage} axial blocks {filters} channels, which '
        f'{heads} attention heads cannot split (need a multiple of '
        f'{heads}: {spec_lib.BASE_FILTERS[stage - 2]} x width_multiplier)')


def _check_decoder(model, problems: Problems):
  decoder = model.decoder
  for i, stage in enumerate(decoder.transformer_stages):
    where = f'model_options.decoder.transformer_stages[{i}]'
    problems.require(stage.backbone_stage in
                     spec_lib.TRANSFORMER_BACKBONE_STAGES,
                     f'{where}.backbone_stage', stage.backbone_stage,
                     'must be 4 or 5')
    problems.at_least(f'{where}.num_blocks', stage.num_blocks, 1)
  high = decoder.high_resolution_output_stride
  problems.require(high in spec_lib.HIGH_RESOLUTION_STRIDES,
                   'model_options.decoder.high_resolution_output_stride',
                   high, 'must be 4 or 8')
  if model.recursive_feature_network:
    problems.require(high == 4,
                     'model_options.decoder.high_resolution_output_stride',
                     high, 'must be 4 with recursive_feature_network (the '
                     'two stacks meet at stride 4)')


def _check_transformer(model, problems: Problems):
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
    problems.note(width)
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


def _check_heads(model, problems: Problems):
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
  rates = list(heads.aspp_atrous_rates)
  problems.require(not rates or (len(rates) == 3 and min(rates) >= 1),
                   f'{path}.aspp_atrous_rates', rates,
                   'must list 3 positive rates (or none: 6, 12, 18)')
  if heads.auxiliary_semantic_head:
    for field in ('aspp_channels', 'semantic_decoder_channels'):
      problems.at_least(f'{path}.{field}', getattr(heads, field), 1)
  problems.require(finite(heads.class_void_prior) and
                   0 < heads.class_void_prior < 1,
                   f'{path}.class_void_prior', heads.class_void_prior,
                   'must lie in (0, 1)')
  problems.require(finite(heads.mask_logits_bn_gamma),
                   f'{path}.mask_logits_bn_gamma', heads.mask_logits_bn_gamma,
                   'must be a finite number')
  if model.initial_checkpoint:
    problems.enum_set('model_options.restore_scope', model.restore_scope,
                      model_pb2.ModelOptions.RestoreScope.DESCRIPTOR,
                      model_pb2.ModelOptions.RESTORE_SCOPE_UNSPECIFIED)


def _check_partial_start(model, problems: Problems):
  """`initial_checkpoint_num_blocks`: 4 positive counts (whether the
  checkpoint really lacks the blocks beyond them is checked when it is
  read; a count at or above the backbone's declares nothing absent)."""
  held = list(model.initial_checkpoint_num_blocks)
  problems.require(not held or (len(held) == 4 and min(held) >= 1),
                   'model_options.initial_checkpoint_num_blocks', held,
                   'must list 4 positive counts (stages 2-5)')


# ---- crops -----------------------------------------------------------------

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


def dataset_with_model_problems(dataset, name: str, model) -> List[str]:
  """What a dataset must agree on with the model: the crop and the masks."""
  problems = Problems()
  stride = model.backbone.output_stride
  crop = list(dataset.crop_size)
  if (len(crop) == 2 and min(crop) >= 1 and
      stride in spec_lib.OUTPUT_STRIDES):
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
  return problems.lines


def _check_axial_reach(crop, model, name, problems):
  """Axial attention spans a whole axis of at most axial_query_region."""
  spec = model_spec(model)
  if spec is None:
    return
  region = spec.backbone.axial_query_region
  for stage, stride in sorted(spec.axial_strides().items()):
    length = (max(crop) - 1) // stride + 1
    if length > region:
      problems.add(f'{name}.crop_size', crop,
                   f'stage-{stage} axial attention at stride {stride} spans '
                   f'{length} positions, more than model_options.backbone.'
                   f'axial_query_region ({region}); local axial attention is '
                   'not implemented')
      return

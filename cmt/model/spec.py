"""The model as plain data: `ModelSpec.from_options(model_options,
solver_options)` resolves the protos into frozen dataclasses, and the layers
are built from these alone. Pure Python (no TensorFlow, no proto import):
`cmt.model_checks` validates a config by building the same spec, so the
shape rules below are the only statement of them.

Layout of Axial-ResNet (Axial-DeepLab's ResNet-beta) as resolved here: a
stem of stride 2, then stages 2-5 of bottleneck blocks of width
`BASE_FILTERS` x `width_multiplier` (outputs 4x that). The first block of a
stage halves the resolution while the stride stays below `output_stride`;
beyond it the stage keeps the resolution and dilates instead. A block whose
plain-ResNet stride s reaches `use_axial_beyond_stride` is an axial block;
a block at s >= 16 gets the drop-path rate of depth log2(s) - 1 (stem = 0).

MaX-DeepLab-S (`decoder.transformer_stages` empty): one more axial block of
stage-5 width with a dual-path layer after the backbone
(`MAX_S_TRANSFORMER_STAGES`).
"""

import dataclasses
import math
from typing import Tuple

# Bottleneck widths of Axial-ResNet stages 2-5.
BASE_FILTERS = (64, 128, 256, 512)
# Heads of every axial-attention block (Axial-DeepLab / MaX-DeepLab: 8).
AXIAL_HEADS = 8
# Blocks of stages 2-5 of each named backbone (`BackboneOptions.Name`).
BLOCKS_PER_STAGE = {
    'AXIAL_RESNET_50': (3, 4, 6, 3),
    'AXIAL_RESNET_104': (3, 4, 24, 3),
}
# `num_blocks` without a name: an Axial-ResNet with those counts.
DEFAULT_BACKBONE = 'AXIAL_RESNET_50'
# The values `model_checks` allows, which the layouts below assume.
OUTPUT_STRIDES = (16, 32)
TRANSFORMER_BACKBONE_STAGES = (4, 5)
HIGH_RESOLUTION_STRIDES = (4, 8)
# Stride of the stem's output.
STEM_STRIDE = 2
# Stochastic depth is applied to blocks at stride >= 16 only (MaX-DeepLab).
DROP_PATH_BEYOND_STRIDE = 16
# (backbone stage, blocks) of the decoder's dual-path stages when
# `decoder.transformer_stages` is empty: MaX-DeepLab-S's extra stage-5 block.
MAX_S_TRANSFORMER_STAGES = ((5, 1),)
# ASPP atrous rates of the auxiliary semantic head when none are listed.
DEFAULT_ATROUS_RATES = (6, 12, 18)


def scaled(channels: int, width_multiplier: float) -> int:
  """A channel count scaled by `backbone.width_multiplier` (at least 1)."""
  return max(1, int(round(channels * width_multiplier)))


def drop_path_rate(rate: float, schedule: str, depth: int,
                   num_stages: int = 4) -> float:
  """Drop rate of a block at depth `depth` (stem = 0, stage 5 = 4).

  CONSTANT: `rate` everywhere; LINEAR: rate x depth / num_stages, growing
  from 0 at the stem to `rate` at the last stage (DeepLab2's schedule for
  MaX-DeepLab).
  """
  if not 0.0 <= rate < 1.0:
    raise ValueError('model_options.backbone.drop_path_rate must be in [0, 1); '
                     f'got {rate}')
  if schedule == 'CONSTANT':
    return rate
  if schedule == 'LINEAR':
    return rate * depth / num_stages
  raise ValueError('model_options.backbone.drop_path_schedule: unsupported '
                   f'value {schedule!r} (use CONSTANT or LINEAR)')


def enum_name(message, field: str) -> str:
  """The name of an enum field's value, read from the message's own
  descriptor."""
  value = getattr(message, field)
  enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
  return enum_type.values_by_number[value].name


def num_blocks_from_options(backbone_options) -> Tuple[int, ...]:
  """Blocks of stages 2-5 from `backbone.name` or the `num_blocks` override,
  times `layer_multiplier` (truncated, as DeepLab2's
  backbone_layer_multiplier). ValueError naming the field otherwise."""
  name = enum_name(backbone_options, 'name')
  if backbone_options.num_blocks:
    counts = tuple(backbone_options.num_blocks)
    if len(counts) != 4 or min(counts) < 1:
      raise ValueError('model_options.backbone.num_blocks must list 4 '
                       f'positive counts (stages 2-5); got {list(counts)}')
  elif name in BLOCKS_PER_STAGE:
    counts = BLOCKS_PER_STAGE[name]
  else:
    raise ValueError('model_options.backbone.name: unsupported value '
                     f'{backbone_options.name} (use '
                     f'{" or ".join(BLOCKS_PER_STAGE)})')
  multiplier = backbone_options.layer_multiplier
  scaled_counts = tuple(int(count * multiplier) for count in counts)
  if min(scaled_counts) < 1:
    raise ValueError('model_options.backbone.layer_multiplier = '
                     f'{multiplier:g}: leaves a stage without blocks '
                     f'({list(counts)} -> {list(scaled_counts)})')
  return scaled_counts


def stem_width_multiplier(backbone_options) -> float:
  """DeepLab2's stem_width_multiplier; unset follows width_multiplier."""
  if backbone_options.HasField('stem_width_multiplier'):
    multiplier = backbone_options.stem_width_multiplier
    if not multiplier > 0:
      raise ValueError('model_options.backbone.stem_width_multiplier = '
                       f'{multiplier:g}: must be > 0')
    return multiplier
  return backbone_options.width_multiplier


@dataclasses.dataclass(frozen=True)
class NormSpec:
  """BatchNorm settings of the whole model (`solver_options`'
  use_sync_batchnorm, batchnorm_momentum, batchnorm_epsilon)."""
  synchronized: bool = False
  momentum: float = 0.99
  epsilon: float = 1e-3

  @classmethod
  def from_solver(cls, solver_options) -> 'NormSpec':
    return cls(synchronized=solver_options.use_sync_batchnorm,
               momentum=solver_options.batchnorm_momentum,
               epsilon=solver_options.batchnorm_epsilon)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One residual block: bottleneck width `filters` (outputs 4x), axial
  attention or a 3x3 convolution, its stride and dilation, drop-path rate,
  and whether its forward is recomputed in the backward pass.
  `plain_stride`: the stride a plain ResNet would have at the block."""
  name: str
  filters: int
  axial: bool
  drop_rate: float
  recompute: bool
  strides: int = 1
  dilation: int = 1
  plain_stride: int = 0


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """The backbone: `stages` holds the blocks of stages 2-5."""
  name: str
  activation: str  # 'relu' or 'gelu'
  output_stride: int
  width_multiplier: float
  stem_width_multiplier: float
  axial_query_region: int
  stages: Tuple[Tuple[BlockSpec, ...], ...]
  axial_heads: int = AXIAL_HEADS

  def filters(self, stage: int) -> int:
    """Bottleneck width of stage 2-5."""
    return scaled(BASE_FILTERS[stage - 2], self.width_multiplier)

  def width(self, stage: int) -> int:
    """Channels of endpoint 'stage{stage}' (2-5): 4x the bottleneck."""
    return 4 * self.filters(stage)

  def axial_strides(self) -> dict:
    """Stage -> smallest stride at which one of its axial blocks runs."""
    found = {}
    for stage, blocks in enumerate(self.stages, start=2):
      for block in blocks:
        if block.axial:
          at = min(block.plain_stride, self.output_stride)
          found[stage] = min(found.get(stage, at), at)
    return found


@dataclasses.dataclass(frozen=True)
class DualPathSpec:
  """Widths and switches shared by every dual-path transformer layer: base
  width memory_channels / 2 (MaX: 128), so that the bottleneck equals the
  memory width; the `clustering` switches of CMT-DeepLab."""
  activation: str
  filters: int
  num_heads: int
  feed_forward_channels: int
  clustering_update: bool
  reference_mask: bool
  coord_conv: bool
  num_reference_points: int


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """One dual-path transformer layer."""
  name: str
  drop_rate: float
  recompute: bool


@dataclasses.dataclass(frozen=True)
class TransformerStageSpec:
  """A decoder dual-path stage: a fuse to `4 * filters` channels with the
  backbone endpoint of `backbone_stage`, then (axial block, layer) pairs."""
  backbone_stage: int
  prefix: str
  filters: int
  pairs: Tuple[Tuple[BlockSpec, LayerSpec], ...]

  @property
  def channels(self) -> int:
    return 4 * self.filters


@dataclasses.dataclass(frozen=True)
class DecoderSpec:
  """Upsampling from the output stride to `high_resolution_output_stride`:
  per stride s in `strides`, a fuse to `channels[i]` (64 s scaled) and one
  bottleneck block of width channels / 4."""
  activation: str
  strides: Tuple[int, ...]
  channels: Tuple[int, ...]
  recompute: bool


@dataclasses.dataclass(frozen=True)
class HeadsSpec:
  """The prediction heads (`model_options.heads`)."""
  pixel_space_head_channels: int
  pixel_space_output_channels: int
  class_void_prior: float
  mask_logits_bn_gamma: float
  auxiliary_semantic_head: bool
  semantic_head_channels: int
  res3_projection_channels: int
  res2_projection_channels: int
  aspp_channels: int
  atrous_rates: Tuple[int, ...]
  semantic_decoder_channels: int


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Everything the layers of one CMT-DeepLab are built from."""
  activation: str
  backbone: BackboneSpec
  # MaX-DeepLab-S: a layer after every stage-5 backbone block.
  backbone_layers: Tuple[LayerSpec, ...]
  transformer_stages: Tuple[TransformerStageSpec, ...]
  dual_path: DualPathSpec
  num_cluster_centers: int
  memory_channels: int
  decoder: DecoderSpec
  heads: HeadsSpec
  norm: NormSpec
  num_stacks: int  # 2 with the Recursive Feature Network.

  @property
  def clustering_update(self) -> bool:
    return self.dual_path.clustering_update

  @property
  def reference_mask(self) -> bool:
    return self.dual_path.reference_mask

  def axial_strides(self) -> dict:
    """Stage -> smallest stride of an axial block, the backbone's and the
    transformer stages' (the crop checks bound the axis length there)."""
    found = self.backbone.axial_strides()
    for stage in self.transformer_stages:
      at = min(2 ** stage.backbone_stage, self.backbone.output_stride)
      found[stage.backbone_stage] = min(found.get(stage.backbone_stage, at),
                                        at)
    return found

  @classmethod
  def from_options(cls, model_options,
                   solver_options=None) -> 'ModelSpec':
    """`model_options` (and the BatchNorm fields of `solver_options`; None:
    `NormSpec()`'s defaults) -> the spec. ValueError naming a field whose
    value leaves no layout; the full checks are `cmt.model_checks`'."""
    backbone = backbone_spec(model_options.backbone,
                             model_options.recompute)
    activation = backbone.activation
    transformer = model_options.transformer
    clustering = model_options.clustering
    return cls(
        activation=activation,
        backbone=backbone,
        backbone_layers=_backbone_layers(model_options, backbone),
        transformer_stages=_transformer_stages(model_options, backbone),
        dual_path=DualPathSpec(
            activation=activation,
            filters=transformer.memory_channels // 2,
            num_heads=transformer.num_heads,
            feed_forward_channels=transformer.feed_forward_channels,
            clustering_update=clustering.clustering_update,
            reference_mask=clustering.reference_mask,
            coord_conv=clustering.coord_conv,
            num_reference_points=clustering.num_reference_points),
        num_cluster_centers=transformer.num_cluster_centers,
        memory_channels=transformer.memory_channels,
        decoder=_decoder(model_options, backbone),
        heads=_heads(model_options.heads),
        norm=(NormSpec.from_solver(solver_options) if solver_options
              is not None else NormSpec()),
        num_stacks=2 if model_options.recursive_feature_network else 1)


def backbone_spec(backbone_options, recompute_options) -> BackboneSpec:
  """The backbone's blocks laid out by stride (module docstring)."""
  options = backbone_options
  output_stride = options.output_stride
  if output_stride not in OUTPUT_STRIDES:
    raise ValueError('model_options.backbone.output_stride = '
                     f'{output_stride}: must be 16 or 32')
  axial_stride = options.use_axial_beyond_stride
  schedule = enum_name(options, 'drop_path_schedule')
  stages = []
  input_stride = STEM_STRIDE
  for stage, count in enumerate(num_blocks_from_options(options), start=2):
    filters = scaled(BASE_FILTERS[stage - 2], options.width_multiplier)
    blocks = []
    current = input_stride  # The stride a plain ResNet would have.
    for index in range(count):
      strides = 2 if index == 0 and current < output_stride else 1
      drop = 0.0
      if current >= DROP_PATH_BEYOND_STRIDE:
        drop = drop_path_rate(options.drop_path_rate, schedule,
                              int(round(math.log2(current))) - 1)
      axial = 0 < axial_stride <= current
      blocks.append(BlockSpec(
          name=f'stage{stage}_block{index + 1}', filters=filters,
          axial=axial, drop_rate=drop,
          recompute=(recompute_options.axial_blocks if axial
                     else recompute_options.conv_blocks),
          strides=strides, dilation=max(1, current // output_stride),
          plain_stride=current))
      if index == 0:
        current *= 2
    stages.append(tuple(blocks))
    input_stride *= 2
  name = enum_name(options, 'name')
  return BackboneSpec(
      name=DEFAULT_BACKBONE if name == 'NAME_UNSPECIFIED' else name,
      activation=enum_name(options, 'activation').lower(),
      output_stride=output_stride,
      width_multiplier=options.width_multiplier,
      stem_width_multiplier=stem_width_multiplier(options),
      axial_query_region=options.axial_query_region,
      stages=tuple(stages))


def _stage_drop_rate(backbone_options, stage: int) -> float:
  """Drop-path rate of the blocks added to backbone stage 4 or 5."""
  return drop_path_rate(backbone_options.drop_path_rate,
                        enum_name(backbone_options, 'drop_path_schedule'),
                        stage - 1)


def _backbone_layers(model_options, backbone: BackboneSpec
                     ) -> Tuple[LayerSpec, ...]:
  """MaX-DeepLab-S: a transformer layer after every stage-5 block of the
  backbone, with the drop-path rate of its block."""
  if not model_options.backbone.dual_path_in_backbone:
    return ()
  recompute = model_options.recompute.transformer_layers
  return tuple(LayerSpec(f'{block.name}_transformer', block.drop_rate,
                         recompute) for block in backbone.stages[-1])


def transformer_stage_layout(model_options) -> Tuple[Tuple[int, int], ...]:
  """(backbone stage, blocks) of each decoder dual-path stage."""
  return tuple((s.backbone_stage, s.num_blocks)
               for s in model_options.decoder.transformer_stages
               ) or MAX_S_TRANSFORMER_STAGES


def _transformer_stages(model_options, backbone: BackboneSpec
                        ) -> Tuple[TransformerStageSpec, ...]:
  """Per stage: `num_blocks` (axial block, transformer layer) pairs at the
  stage's width, with the drop-path rate of that backbone stage."""
  recompute = model_options.recompute
  result = []
  for stage_index, (stage, count) in enumerate(
      transformer_stage_layout(model_options)):
    if stage not in TRANSFORMER_BACKBONE_STAGES:
      raise ValueError('model_options.decoder.transformer_stages'
                       f'[{stage_index}].backbone_stage = {stage}: must be '
                       '4 or 5')
    prefix = f'transformer_stage{stage_index + 1}'
    drop_rate = _stage_drop_rate(model_options.backbone, stage)
    filters = backbone.filters(stage)
    pairs = tuple(
        (BlockSpec(f'{prefix}_block{index + 1}', filters, axial=True,
                   drop_rate=drop_rate, recompute=recompute.axial_blocks,
                   plain_stride=2 ** stage),
         LayerSpec(f'{prefix}_block{index + 1}_transformer', drop_rate,
                   recompute.transformer_layers))
        for index in range(count))
    result.append(TransformerStageSpec(stage, prefix, filters, pairs))
  return tuple(result)


def upsampling_strides(output_stride: int, high_resolution_stride: int
                       ) -> Tuple[int, ...]:
  """Strides the decoder visits after the backbone (16 -> (8, 4))."""
  if (high_resolution_stride not in HIGH_RESOLUTION_STRIDES or
      high_resolution_stride > output_stride):
    raise ValueError('model_options.decoder.high_resolution_output_stride '
                     f'must be 4 or 8 (and <= the output stride); got '
                     f'{high_resolution_stride}')
  strides = []
  stride = output_stride // 2
  while stride >= high_resolution_stride:
    strides.append(stride)
    stride //= 2
  return tuple(strides)


def _decoder(model_options, backbone: BackboneSpec) -> DecoderSpec:
  strides = upsampling_strides(
      backbone.output_stride,
      model_options.decoder.high_resolution_output_stride)
  return DecoderSpec(
      activation=backbone.activation, strides=strides,
      channels=tuple(scaled(64 * s, backbone.width_multiplier)
                     for s in strides),
      recompute=model_options.recompute.decoder_stages)


def _heads(heads) -> HeadsSpec:
  return HeadsSpec(
      pixel_space_head_channels=heads.pixel_space_head_channels,
      pixel_space_output_channels=heads.pixel_space_output_channels,
      class_void_prior=heads.class_void_prior,
      mask_logits_bn_gamma=heads.mask_logits_bn_gamma,
      auxiliary_semantic_head=heads.auxiliary_semantic_head,
      semantic_head_channels=heads.semantic_head_channels,
      res3_projection_channels=heads.res3_projection_channels,
      res2_projection_channels=heads.res2_projection_channels,
      aspp_channels=heads.aspp_channels,
      atrous_rates=tuple(heads.aspp_atrous_rates) or DEFAULT_ATROUS_RATES,
      semantic_decoder_channels=heads.semantic_decoder_channels)

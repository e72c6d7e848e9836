from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Activation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTIVATION_UNSPECIFIED: _ClassVar[Activation]
    RELU: _ClassVar[Activation]
    GELU: _ClassVar[Activation]
ACTIVATION_UNSPECIFIED: Activation
RELU: Activation
GELU: Activation

class BackboneOptions(_message.Message):
    __slots__ = ("name", "activation", "drop_path_rate", "drop_path_schedule", "output_stride", "use_axial_beyond_stride", "dual_path_in_backbone", "axial_query_region", "width_multiplier", "num_blocks", "stem_width_multiplier", "layer_multiplier")
    class Name(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NAME_UNSPECIFIED: _ClassVar[BackboneOptions.Name]
        AXIAL_RESNET_50: _ClassVar[BackboneOptions.Name]
        AXIAL_RESNET_104: _ClassVar[BackboneOptions.Name]
    NAME_UNSPECIFIED: BackboneOptions.Name
    AXIAL_RESNET_50: BackboneOptions.Name
    AXIAL_RESNET_104: BackboneOptions.Name
    class DropPathSchedule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DROP_PATH_SCHEDULE_UNSPECIFIED: _ClassVar[BackboneOptions.DropPathSchedule]
        CONSTANT: _ClassVar[BackboneOptions.DropPathSchedule]
        LINEAR: _ClassVar[BackboneOptions.DropPathSchedule]
    DROP_PATH_SCHEDULE_UNSPECIFIED: BackboneOptions.DropPathSchedule
    CONSTANT: BackboneOptions.DropPathSchedule
    LINEAR: BackboneOptions.DropPathSchedule
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    DROP_PATH_RATE_FIELD_NUMBER: _ClassVar[int]
    DROP_PATH_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_STRIDE_FIELD_NUMBER: _ClassVar[int]
    USE_AXIAL_BEYOND_STRIDE_FIELD_NUMBER: _ClassVar[int]
    DUAL_PATH_IN_BACKBONE_FIELD_NUMBER: _ClassVar[int]
    AXIAL_QUERY_REGION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    STEM_WIDTH_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    LAYER_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    name: BackboneOptions.Name
    activation: Activation
    drop_path_rate: float
    drop_path_schedule: BackboneOptions.DropPathSchedule
    output_stride: int
    use_axial_beyond_stride: int
    dual_path_in_backbone: bool
    axial_query_region: int
    width_multiplier: float
    num_blocks: _containers.RepeatedScalarFieldContainer[int]
    stem_width_multiplier: float
    layer_multiplier: float
    def __init__(self, name: _Optional[_Union[BackboneOptions.Name, str]] = ..., activation: _Optional[_Union[Activation, str]] = ..., drop_path_rate: _Optional[float] = ..., drop_path_schedule: _Optional[_Union[BackboneOptions.DropPathSchedule, str]] = ..., output_stride: _Optional[int] = ..., use_axial_beyond_stride: _Optional[int] = ..., dual_path_in_backbone: _Optional[bool] = ..., axial_query_region: _Optional[int] = ..., width_multiplier: _Optional[float] = ..., num_blocks: _Optional[_Iterable[int]] = ..., stem_width_multiplier: _Optional[float] = ..., layer_multiplier: _Optional[float] = ...) -> None: ...

class TransformerStageOptions(_message.Message):
    __slots__ = ("backbone_stage", "num_blocks")
    BACKBONE_STAGE_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    backbone_stage: int
    num_blocks: int
    def __init__(self, backbone_stage: _Optional[int] = ..., num_blocks: _Optional[int] = ...) -> None: ...

class DecoderOptions(_message.Message):
    __slots__ = ("transformer_stages", "high_resolution_output_stride")
    TRANSFORMER_STAGES_FIELD_NUMBER: _ClassVar[int]
    HIGH_RESOLUTION_OUTPUT_STRIDE_FIELD_NUMBER: _ClassVar[int]
    transformer_stages: _containers.RepeatedCompositeFieldContainer[TransformerStageOptions]
    high_resolution_output_stride: int
    def __init__(self, transformer_stages: _Optional[_Iterable[_Union[TransformerStageOptions, _Mapping]]] = ..., high_resolution_output_stride: _Optional[int] = ...) -> None: ...

class TransformerOptions(_message.Message):
    __slots__ = ("num_cluster_centers", "memory_channels", "num_heads", "feed_forward_channels")
    NUM_CLUSTER_CENTERS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NUM_HEADS_FIELD_NUMBER: _ClassVar[int]
    FEED_FORWARD_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    num_cluster_centers: int
    memory_channels: int
    num_heads: int
    feed_forward_channels: int
    def __init__(self, num_cluster_centers: _Optional[int] = ..., memory_channels: _Optional[int] = ..., num_heads: _Optional[int] = ..., feed_forward_channels: _Optional[int] = ...) -> None: ...

class ClusteringOptions(_message.Message):
    __slots__ = ("clustering_update", "reference_mask", "coord_conv", "num_reference_points")
    CLUSTERING_UPDATE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_MASK_FIELD_NUMBER: _ClassVar[int]
    COORD_CONV_FIELD_NUMBER: _ClassVar[int]
    NUM_REFERENCE_POINTS_FIELD_NUMBER: _ClassVar[int]
    clustering_update: bool
    reference_mask: bool
    coord_conv: bool
    num_reference_points: int
    def __init__(self, clustering_update: _Optional[bool] = ..., reference_mask: _Optional[bool] = ..., coord_conv: _Optional[bool] = ..., num_reference_points: _Optional[int] = ...) -> None: ...

class HeadOptions(_message.Message):
    __slots__ = ("pixel_space_head_channels", "pixel_space_output_channels", "res3_projection_channels", "res2_projection_channels", "auxiliary_semantic_head", "semantic_head_channels", "class_void_prior", "mask_logits_bn_gamma", "aspp_channels", "aspp_atrous_rates", "semantic_decoder_channels")
    PIXEL_SPACE_HEAD_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SPACE_OUTPUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    RES3_PROJECTION_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    RES2_PROJECTION_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    AUXILIARY_SEMANTIC_HEAD_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_HEAD_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CLASS_VOID_PRIOR_FIELD_NUMBER: _ClassVar[int]
    MASK_LOGITS_BN_GAMMA_FIELD_NUMBER: _ClassVar[int]
    ASPP_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    ASPP_ATROUS_RATES_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_DECODER_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    pixel_space_head_channels: int
    pixel_space_output_channels: int
    res3_projection_channels: int
    res2_projection_channels: int
    auxiliary_semantic_head: bool
    semantic_head_channels: int
    class_void_prior: float
    mask_logits_bn_gamma: float
    aspp_channels: int
    aspp_atrous_rates: _containers.RepeatedScalarFieldContainer[int]
    semantic_decoder_channels: int
    def __init__(self, pixel_space_head_channels: _Optional[int] = ..., pixel_space_output_channels: _Optional[int] = ..., res3_projection_channels: _Optional[int] = ..., res2_projection_channels: _Optional[int] = ..., auxiliary_semantic_head: _Optional[bool] = ..., semantic_head_channels: _Optional[int] = ..., class_void_prior: _Optional[float] = ..., mask_logits_bn_gamma: _Optional[float] = ..., aspp_channels: _Optional[int] = ..., aspp_atrous_rates: _Optional[_Iterable[int]] = ..., semantic_decoder_channels: _Optional[int] = ...) -> None: ...

class RecomputeOptions(_message.Message):
    __slots__ = ("conv_blocks", "axial_blocks", "transformer_layers", "decoder_stages")
    CONV_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    AXIAL_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMER_LAYERS_FIELD_NUMBER: _ClassVar[int]
    DECODER_STAGES_FIELD_NUMBER: _ClassVar[int]
    conv_blocks: bool
    axial_blocks: bool
    transformer_layers: bool
    decoder_stages: bool
    def __init__(self, conv_blocks: _Optional[bool] = ..., axial_blocks: _Optional[bool] = ..., transformer_layers: _Optional[bool] = ..., decoder_stages: _Optional[bool] = ...) -> None: ...

class ModelOptions(_message.Message):
    __slots__ = ("backbone", "decoder", "transformer", "clustering", "heads", "recursive_feature_network", "initial_checkpoint", "restore_scope", "initial_checkpoint_num_blocks", "recompute")
    class RestoreScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESTORE_SCOPE_UNSPECIFIED: _ClassVar[ModelOptions.RestoreScope]
        BACKBONE: _ClassVar[ModelOptions.RestoreScope]
        WHOLE_MODEL: _ClassVar[ModelOptions.RestoreScope]
    RESTORE_SCOPE_UNSPECIFIED: ModelOptions.RestoreScope
    BACKBONE: ModelOptions.RestoreScope
    WHOLE_MODEL: ModelOptions.RestoreScope
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    DECODER_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMER_FIELD_NUMBER: _ClassVar[int]
    CLUSTERING_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FEATURE_NETWORK_FIELD_NUMBER: _ClassVar[int]
    INITIAL_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    RESTORE_SCOPE_FIELD_NUMBER: _ClassVar[int]
    INITIAL_CHECKPOINT_NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    RECOMPUTE_FIELD_NUMBER: _ClassVar[int]
    backbone: BackboneOptions
    decoder: DecoderOptions
    transformer: TransformerOptions
    clustering: ClusteringOptions
    heads: HeadOptions
    recursive_feature_network: bool
    initial_checkpoint: str
    restore_scope: ModelOptions.RestoreScope
    initial_checkpoint_num_blocks: _containers.RepeatedScalarFieldContainer[int]
    recompute: RecomputeOptions
    def __init__(self, backbone: _Optional[_Union[BackboneOptions, _Mapping]] = ..., decoder: _Optional[_Union[DecoderOptions, _Mapping]] = ..., transformer: _Optional[_Union[TransformerOptions, _Mapping]] = ..., clustering: _Optional[_Union[ClusteringOptions, _Mapping]] = ..., heads: _Optional[_Union[HeadOptions, _Mapping]] = ..., recursive_feature_network: _Optional[bool] = ..., initial_checkpoint: _Optional[str] = ..., restore_scope: _Optional[_Union[ModelOptions.RestoreScope, str]] = ..., initial_checkpoint_num_blocks: _Optional[_Iterable[int]] = ..., recompute: _Optional[_Union[RecomputeOptions, _Mapping]] = ...) -> None: ...

from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PQStyleLossOptions(_message.Message):
    __slots__ = ("weight", "alpha", "unmatched_weight")
    class UnmatchedWeight(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNMATCHED_WEIGHT_UNSPECIFIED: _ClassVar[PQStyleLossOptions.UnmatchedWeight]
        CONSTANT: _ClassVar[PQStyleLossOptions.UnmatchedWeight]
        VOID_RATIO: _ClassVar[PQStyleLossOptions.UnmatchedWeight]
    UNMATCHED_WEIGHT_UNSPECIFIED: PQStyleLossOptions.UnmatchedWeight
    CONSTANT: PQStyleLossOptions.UnmatchedWeight
    VOID_RATIO: PQStyleLossOptions.UnmatchedWeight
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    UNMATCHED_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    weight: float
    alpha: float
    unmatched_weight: PQStyleLossOptions.UnmatchedWeight
    def __init__(self, weight: _Optional[float] = ..., alpha: _Optional[float] = ..., unmatched_weight: _Optional[_Union[PQStyleLossOptions.UnmatchedWeight, str]] = ...) -> None: ...

class WeightedLossOptions(_message.Message):
    __slots__ = ("weight",)
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    weight: float
    def __init__(self, weight: _Optional[float] = ...) -> None: ...

class InstanceDiscriminationOptions(_message.Message):
    __slots__ = ("weight", "type", "temperature", "sample_count", "sample_temperature")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[InstanceDiscriminationOptions.Type]
        MASK_CENTER: _ClassVar[InstanceDiscriminationOptions.Type]
        PIXEL_CONTRASTIVE: _ClassVar[InstanceDiscriminationOptions.Type]
    TYPE_UNSPECIFIED: InstanceDiscriminationOptions.Type
    MASK_CENTER: InstanceDiscriminationOptions.Type
    PIXEL_CONTRASTIVE: InstanceDiscriminationOptions.Type
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    weight: float
    type: InstanceDiscriminationOptions.Type
    temperature: float
    sample_count: int
    sample_temperature: float
    def __init__(self, weight: _Optional[float] = ..., type: _Optional[_Union[InstanceDiscriminationOptions.Type, str]] = ..., temperature: _Optional[float] = ..., sample_count: _Optional[int] = ..., sample_temperature: _Optional[float] = ...) -> None: ...

class LossOptions(_message.Message):
    __slots__ = ("pq_style_loss", "mask_id_cross_entropy_loss", "instance_discrimination_loss", "semantic_loss", "mask_approximation_loss", "deep_supervision")
    PQ_STYLE_LOSS_FIELD_NUMBER: _ClassVar[int]
    MASK_ID_CROSS_ENTROPY_LOSS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_DISCRIMINATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_LOSS_FIELD_NUMBER: _ClassVar[int]
    MASK_APPROXIMATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    DEEP_SUPERVISION_FIELD_NUMBER: _ClassVar[int]
    pq_style_loss: PQStyleLossOptions
    mask_id_cross_entropy_loss: WeightedLossOptions
    instance_discrimination_loss: InstanceDiscriminationOptions
    semantic_loss: WeightedLossOptions
    mask_approximation_loss: WeightedLossOptions
    deep_supervision: bool
    def __init__(self, pq_style_loss: _Optional[_Union[PQStyleLossOptions, _Mapping]] = ..., mask_id_cross_entropy_loss: _Optional[_Union[WeightedLossOptions, _Mapping]] = ..., instance_discrimination_loss: _Optional[_Union[InstanceDiscriminationOptions, _Mapping]] = ..., semantic_loss: _Optional[_Union[WeightedLossOptions, _Mapping]] = ..., mask_approximation_loss: _Optional[_Union[WeightedLossOptions, _Mapping]] = ..., deep_supervision: _Optional[bool] = ...) -> None: ...

class SolverOptions(_message.Message):
    __slots__ = ("optimizer", "base_learning_rate", "poly_learning_power", "poly_end_learning_rate", "warmup_steps", "training_number_of_steps", "backbone_learning_rate_multiplier", "weight_decay", "gradient_clip_norm", "use_sync_batchnorm", "batchnorm_momentum", "batchnorm_epsilon", "precision", "adam_beta_1", "adam_beta_2", "adam_epsilon", "sgd_momentum")
    class Optimizer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OPTIMIZER_UNSPECIFIED: _ClassVar[SolverOptions.Optimizer]
        ADAM: _ClassVar[SolverOptions.Optimizer]
        ADAMW: _ClassVar[SolverOptions.Optimizer]
        SGD: _ClassVar[SolverOptions.Optimizer]
    OPTIMIZER_UNSPECIFIED: SolverOptions.Optimizer
    ADAM: SolverOptions.Optimizer
    ADAMW: SolverOptions.Optimizer
    SGD: SolverOptions.Optimizer
    class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PRECISION_UNSPECIFIED: _ClassVar[SolverOptions.Precision]
        FLOAT32: _ClassVar[SolverOptions.Precision]
        MIXED_BFLOAT16: _ClassVar[SolverOptions.Precision]
        MIXED_FLOAT16: _ClassVar[SolverOptions.Precision]
    PRECISION_UNSPECIFIED: SolverOptions.Precision
    FLOAT32: SolverOptions.Precision
    MIXED_BFLOAT16: SolverOptions.Precision
    MIXED_FLOAT16: SolverOptions.Precision
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    BASE_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    POLY_LEARNING_POWER_FIELD_NUMBER: _ClassVar[int]
    POLY_END_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_NUMBER_OF_STEPS_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_LEARNING_RATE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_CLIP_NORM_FIELD_NUMBER: _ClassVar[int]
    USE_SYNC_BATCHNORM_FIELD_NUMBER: _ClassVar[int]
    BATCHNORM_MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    BATCHNORM_EPSILON_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ADAM_BETA_1_FIELD_NUMBER: _ClassVar[int]
    ADAM_BETA_2_FIELD_NUMBER: _ClassVar[int]
    ADAM_EPSILON_FIELD_NUMBER: _ClassVar[int]
    SGD_MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    optimizer: SolverOptions.Optimizer
    base_learning_rate: float
    poly_learning_power: float
    poly_end_learning_rate: float
    warmup_steps: int
    training_number_of_steps: int
    backbone_learning_rate_multiplier: float
    weight_decay: float
    gradient_clip_norm: float
    use_sync_batchnorm: bool
    batchnorm_momentum: float
    batchnorm_epsilon: float
    precision: SolverOptions.Precision
    adam_beta_1: float
    adam_beta_2: float
    adam_epsilon: float
    sgd_momentum: float
    def __init__(self, optimizer: _Optional[_Union[SolverOptions.Optimizer, str]] = ..., base_learning_rate: _Optional[float] = ..., poly_learning_power: _Optional[float] = ..., poly_end_learning_rate: _Optional[float] = ..., warmup_steps: _Optional[int] = ..., training_number_of_steps: _Optional[int] = ..., backbone_learning_rate_multiplier: _Optional[float] = ..., weight_decay: _Optional[float] = ..., gradient_clip_norm: _Optional[float] = ..., use_sync_batchnorm: _Optional[bool] = ..., batchnorm_momentum: _Optional[float] = ..., batchnorm_epsilon: _Optional[float] = ..., precision: _Optional[_Union[SolverOptions.Precision, str]] = ..., adam_beta_1: _Optional[float] = ..., adam_beta_2: _Optional[float] = ..., adam_epsilon: _Optional[float] = ..., sgd_momentum: _Optional[float] = ...) -> None: ...

class TrainerOptions(_message.Message):
    __slots__ = ("save_checkpoints_steps", "save_summaries_steps", "steps_per_loop", "num_checkpoints_to_keep", "loss_options", "solver_options", "jit_compile", "stop_on_nonfinite_loss")
    SAVE_CHECKPOINTS_STEPS_FIELD_NUMBER: _ClassVar[int]
    SAVE_SUMMARIES_STEPS_FIELD_NUMBER: _ClassVar[int]
    STEPS_PER_LOOP_FIELD_NUMBER: _ClassVar[int]
    NUM_CHECKPOINTS_TO_KEEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SOLVER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    JIT_COMPILE_FIELD_NUMBER: _ClassVar[int]
    STOP_ON_NONFINITE_LOSS_FIELD_NUMBER: _ClassVar[int]
    save_checkpoints_steps: int
    save_summaries_steps: int
    steps_per_loop: int
    num_checkpoints_to_keep: int
    loss_options: LossOptions
    solver_options: SolverOptions
    jit_compile: bool
    stop_on_nonfinite_loss: bool
    def __init__(self, save_checkpoints_steps: _Optional[int] = ..., save_summaries_steps: _Optional[int] = ..., steps_per_loop: _Optional[int] = ..., num_checkpoints_to_keep: _Optional[int] = ..., loss_options: _Optional[_Union[LossOptions, _Mapping]] = ..., solver_options: _Optional[_Union[SolverOptions, _Mapping]] = ..., jit_compile: _Optional[bool] = ..., stop_on_nonfinite_loss: _Optional[bool] = ...) -> None: ...

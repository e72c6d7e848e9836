from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AugmentationOptions(_message.Message):
    __slots__ = ("min_scale_factor", "max_scale_factor", "scale_factor_step_size", "flip_probability")
    MIN_SCALE_FACTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_SCALE_FACTOR_FIELD_NUMBER: _ClassVar[int]
    SCALE_FACTOR_STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    FLIP_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    min_scale_factor: float
    max_scale_factor: float
    scale_factor_step_size: float
    flip_probability: float
    def __init__(self, min_scale_factor: _Optional[float] = ..., max_scale_factor: _Optional[float] = ..., scale_factor_step_size: _Optional[float] = ..., flip_probability: _Optional[float] = ...) -> None: ...

class DatasetOptions(_message.Message):
    __slots__ = ("dataset", "categories_json", "file_pattern", "batch_size", "batch_size_per_replica", "crop_size", "min_resize_value", "max_resize_value", "augmentations", "max_num_masks", "seed", "shuffle_buffer_size")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_JSON_FIELD_NUMBER: _ClassVar[int]
    FILE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_PER_REPLICA_FIELD_NUMBER: _ClassVar[int]
    CROP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_RESIZE_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESIZE_VALUE_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_MASKS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_BUFFER_SIZE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    categories_json: str
    file_pattern: _containers.RepeatedScalarFieldContainer[str]
    batch_size: int
    batch_size_per_replica: int
    crop_size: _containers.RepeatedScalarFieldContainer[int]
    min_resize_value: int
    max_resize_value: int
    augmentations: AugmentationOptions
    max_num_masks: int
    seed: int
    shuffle_buffer_size: int
    def __init__(self, dataset: _Optional[str] = ..., categories_json: _Optional[str] = ..., file_pattern: _Optional[_Iterable[str]] = ..., batch_size: _Optional[int] = ..., batch_size_per_replica: _Optional[int] = ..., crop_size: _Optional[_Iterable[int]] = ..., min_resize_value: _Optional[int] = ..., max_resize_value: _Optional[int] = ..., augmentations: _Optional[_Union[AugmentationOptions, _Mapping]] = ..., max_num_masks: _Optional[int] = ..., seed: _Optional[int] = ..., shuffle_buffer_size: _Optional[int] = ...) -> None: ...

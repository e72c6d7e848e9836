from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluatorOptions(_message.Message):
    __slots__ = ("post_processing", "thing_class_threshold", "stuff_class_threshold", "pixel_confidence_threshold", "overlap_threshold", "class_score_power", "mask_score_power", "thing_area_limit", "stuff_area_limit", "compute_mask_ap", "save_predictions", "num_summary_images", "eval_steps", "eval_interval_steps", "continuous_eval_timeout")
    class PostProcessing(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        POST_PROCESSING_UNSPECIFIED: _ClassVar[EvaluatorOptions.PostProcessing]
        PER_PIXEL: _ClassVar[EvaluatorOptions.PostProcessing]
        MASK_WISE: _ClassVar[EvaluatorOptions.PostProcessing]
    POST_PROCESSING_UNSPECIFIED: EvaluatorOptions.PostProcessing
    PER_PIXEL: EvaluatorOptions.PostProcessing
    MASK_WISE: EvaluatorOptions.PostProcessing
    POST_PROCESSING_FIELD_NUMBER: _ClassVar[int]
    THING_CLASS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    STUFF_CLASS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PIXEL_CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CLASS_SCORE_POWER_FIELD_NUMBER: _ClassVar[int]
    MASK_SCORE_POWER_FIELD_NUMBER: _ClassVar[int]
    THING_AREA_LIMIT_FIELD_NUMBER: _ClassVar[int]
    STUFF_AREA_LIMIT_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_MASK_AP_FIELD_NUMBER: _ClassVar[int]
    SAVE_PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    NUM_SUMMARY_IMAGES_FIELD_NUMBER: _ClassVar[int]
    EVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EVAL_INTERVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_EVAL_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    post_processing: EvaluatorOptions.PostProcessing
    thing_class_threshold: float
    stuff_class_threshold: float
    pixel_confidence_threshold: float
    overlap_threshold: float
    class_score_power: float
    mask_score_power: float
    thing_area_limit: int
    stuff_area_limit: int
    compute_mask_ap: bool
    save_predictions: bool
    num_summary_images: int
    eval_steps: int
    eval_interval_steps: int
    continuous_eval_timeout: int
    def __init__(self, post_processing: _Optional[_Union[EvaluatorOptions.PostProcessing, str]] = ..., thing_class_threshold: _Optional[float] = ..., stuff_class_threshold: _Optional[float] = ..., pixel_confidence_threshold: _Optional[float] = ..., overlap_threshold: _Optional[float] = ..., class_score_power: _Optional[float] = ..., mask_score_power: _Optional[float] = ..., thing_area_limit: _Optional[int] = ..., stuff_area_limit: _Optional[int] = ..., compute_mask_ap: _Optional[bool] = ..., save_predictions: _Optional[bool] = ..., num_summary_images: _Optional[int] = ..., eval_steps: _Optional[int] = ..., eval_interval_steps: _Optional[int] = ..., continuous_eval_timeout: _Optional[int] = ...) -> None: ...

from cmt.protos import dataset_pb2 as _dataset_pb2
from cmt.protos import evaluator_pb2 as _evaluator_pb2
from cmt.protos import model_pb2 as _model_pb2
from cmt.protos import trainer_pb2 as _trainer_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExperimentOptions(_message.Message):
    __slots__ = ("experiment_name", "model_options", "trainer_options", "train_dataset_options", "eval_dataset_options", "evaluator_options")
    EXPERIMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TRAINER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_DATASET_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASET_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EVALUATOR_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    experiment_name: str
    model_options: _model_pb2.ModelOptions
    trainer_options: _trainer_pb2.TrainerOptions
    train_dataset_options: _dataset_pb2.DatasetOptions
    eval_dataset_options: _dataset_pb2.DatasetOptions
    evaluator_options: _evaluator_pb2.EvaluatorOptions
    def __init__(self, experiment_name: _Optional[str] = ..., model_options: _Optional[_Union[_model_pb2.ModelOptions, _Mapping]] = ..., trainer_options: _Optional[_Union[_trainer_pb2.TrainerOptions, _Mapping]] = ..., train_dataset_options: _Optional[_Union[_dataset_pb2.DatasetOptions, _Mapping]] = ..., eval_dataset_options: _Optional[_Union[_dataset_pb2.DatasetOptions, _Mapping]] = ..., evaluator_options: _Optional[_Union[_evaluator_pb2.EvaluatorOptions, _Mapping]] = ...) -> None: ...

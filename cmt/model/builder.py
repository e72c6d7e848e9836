"""Builds the model an `ExperimentOptions` describes: the one model module
that reads the protos (through `cmt.model.spec`); the layers see the spec.

  model_spec(options) -> spec.ModelSpec of a checked config
  build_model(options, dataset_info) -> tf_keras.Model
  backbone_variables(model, num_blocks) -> the backbone of every stack (no
      cluster centers, transformer layers, decoder or heads)
  pretrained_variables(model, model_options) -> the backbone variables that
      `initial_checkpoint` provides: restored, and learning at
      `backbone_learning_rate_multiplier`
  count_inference_params(options, dataset_info) -> int, trainable parameters
      used at inference (the training-only auxiliary semantic head excluded,
      as DeepLab2 counts MaX-DeepLab-S at 61.9M)
"""

from typing import List, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from cmt import config_checks
from cmt import model_checks
from cmt.model import cmt_deeplab
from cmt.model import heads
from cmt.model import spec as spec_lib

# Smallest crop every model variant accepts (4k + 1, stride 32 -> 3 x 3).
_COUNT_CROP = 65


def model_spec(options) -> spec_lib.ModelSpec:
  """The spec of `options.model_options` with the BatchNorm settings of
  `trainer_options.solver_options`. ValueError naming every bad field
  (`model_checks` and `config_checks.batchnorm_problems`, the checks
  `cmt-config validate` runs)."""
  solver = options.trainer_options.solver_options
  problems = (model_checks.model_problems(options.model_options) +
              config_checks.batchnorm_problems(solver))
  if problems:
    raise ValueError('; '.join(problems))
  return spec_lib.ModelSpec.from_options(options.model_options, solver)


def build_model(options, dataset_info) -> tf_keras.Model:
  """An unbuilt `CMTDeepLab`; variables are created on the first call.
  ValueError naming every bad field before any layer is built."""
  return cmt_deeplab.CMTDeepLab(model_spec(options), dataset_info.num_classes)


def build_and_initialise(options, dataset_info, crop_size: int = _COUNT_CROP,
                         batch_size: int = 1) -> tf_keras.Model:
  """`build_model` followed by one inference call on zeros of the crop, so
  that every variable exists."""
  model = build_model(options, dataset_info)
  model(tf.zeros([batch_size, crop_size, crop_size, 3]), training=False)
  return model


def backbone_variables(model: cmt_deeplab.CMTDeepLab,
                       num_blocks: Sequence[int] = ()) -> List[tf.Variable]:
  """The backbone (stem, stages 2-5) of every stack: both stacks of the
  Recursive Feature Network start from the same pretrained backbone (the
  paper stacks "the whole model (including the backbone)" twice).

  Args:
    num_blocks: residual blocks per stage 2-5 to include (the first ones);
      empty: every block.
  """
  variables = []
  # `encoders`, the checkpoint attribute: also a bare holder of a backbone
  # (a tf.Module with `encoders[0].backbone`) qualifies.
  for stack in model.encoders:
    beyond = set()
    for stage, count in zip(stack.backbone.stages, num_blocks):
      beyond.update(v.ref() for block in stage[count:]
                    for v in block.variables)
    variables.extend(v for v in stack.backbone.variables
                     if v.ref() not in beyond)
  return variables


def pretrained_variables(model: cmt_deeplab.CMTDeepLab,
                         model_options) -> List[tf.Variable]:
  """The backbone variables `model_options.initial_checkpoint` provides:
  every stack's backbone without the blocks beyond
  `initial_checkpoint_num_blocks` (a declared partial start); none without
  an initial checkpoint. `restore_scope: BACKBONE` restores exactly these
  (or stops), and they alone learn at `backbone_learning_rate_multiplier`:
  a backbone block that starts from initialisation learns at the full rate.
  """
  if not model_options.initial_checkpoint:
    return []
  return backbone_variables(model, model_options.initial_checkpoint_num_blocks)


def inference_trainable_variables(model) -> List[tf.Variable]:
  return [v for v in model.trainable_variables
          if heads.AUXILIARY_SEMANTIC not in v.name]


def count_inference_params(options, dataset_info) -> int:
  """Trainable parameters used at inference, from a model built at a small
  crop (the count does not depend on the crop size)."""
  model = build_and_initialise(options, dataset_info)
  return int(sum(np.prod(v.shape) for v in
                 inference_trainable_variables(model)))

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

from typing import Iterable, List, Sequence

from cmt import model_checks
from cmt.data import dataset_info as dataset_info_lib
from cmt.problems import finite
from cmt.problems import Problems
from cmt.protos import config_pb2
from cmt.protos import evaluator_pb2
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
MODES = tuple(MODE_PURPOSES)

_Solver = trainer_pb2.SolverOptions
_Evaluator = evaluator_pb2.EvaluatorOptions


def check_options(options: config_pb2.ExperimentOptions,
                  purposes: Iterable[str] = ()) -> List[str]:
  """Problems of `options` for `purposes` (empty list: it runs)."""
  purposes = tuple(purposes)
  unknown = set(purposes) - set(ALL_PURPOSES)
  if unknown:
    raise ValueError(f'unknown purposes {sorted(unknown)}')
  problems = Problems()
  if purposes and not options.ListFields():
    problems.note(
        'the config sets nothing; an experiment needs at least '
        + _needed_sections(purposes) + ' (dataset or categories_json, '
        'file_pattern, crop_size)')
    return problems.lines
  problems.extend(model_checks.model_problems(options.model_options))
  for name, used_for in (('train_dataset_options', (TRAIN,)),
                         ('eval_dataset_options', (EVAL, EXPORT))):
    needed = [p for p in purposes if p in used_for]
    if not options.HasField(name):
      if needed:
        problems.note(
            f'{name}: missing; needed to {" and ".join(needed)}')
      continue
    dataset = getattr(options, name)
    problems.extend(dataset_problems(dataset, name, needed))
    problems.extend(model_checks.dataset_with_model_problems(
        dataset, name, options.model_options))
  _check_trainer(options.trainer_options, problems)
  problems.extend(evaluator_problems(options.evaluator_options))
  return problems.lines


def _needed_sections(purposes: Sequence[str]) -> str:
  names = []
  if TRAIN in purposes:
    names.append('train_dataset_options')
  if EVAL in purposes or EXPORT in purposes:
    names.append('eval_dataset_options')
  return ' and '.join(names)


# ---- datasets --------------------------------------------------------------

def dataset_problems(dataset, name: str,
                     purposes: Sequence[str] = ()) -> List[str]:
  """Problems of one DatasetOptions on its own (also read by the input
  pipeline); `purposes` those of the run that use it."""
  problems = Problems()
  if dataset.dataset and dataset.categories_json:
    problems.note(f'{name}: set dataset (built-in) or '
                  'categories_json (custom), not both')
  elif not dataset.dataset and not dataset.categories_json:
    problems.note(f'{name}: set dataset (e.g. "coco_panoptic") or '
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
    problems.add(f'{name}.crop_size', crop,
                 'needs 2 values [height, width], both >= 1')
  problems.at_least(f'{name}.batch_size', dataset.batch_size, 1)
  if dataset.WhichOneof('batch') == 'batch_size_per_replica':
    problems.at_least(f'{name}.batch_size_per_replica',
                      dataset.batch_size_per_replica, 1)
    problems.require(
        TRAIN not in purposes and name != 'train_dataset_options',
        f'{name}.batch_size_per_replica', dataset.batch_size_per_replica,
        'evaluation only; training states the global batch_size (the '
        'learning rate and the paper\'s settings are per global batch)')
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


def _check_augmentations(augmentations, path: str, problems: Problems):
  low, high = augmentations.min_scale_factor, augmentations.max_scale_factor
  problems.require(finite(low) and finite(high) and 0 < low <= high,
                   f'{path}.min_scale_factor', low,
                   f'need 0 < min_scale_factor <= max_scale_factor ({high:g})')
  problems.require(finite(augmentations.scale_factor_step_size) and
                   augmentations.scale_factor_step_size >= 0,
                   f'{path}.scale_factor_step_size',
                   augmentations.scale_factor_step_size,
                   'must be >= 0 (0 = continuous)')
  problems.in_range(f'{path}.flip_probability',
                    augmentations.flip_probability, 0, 1)


def eval_batch_problems(dataset, num_replicas: int,
                        name: str = 'eval_dataset_options') -> List[str]:
  """Problems of an evaluation batch on `num_replicas` replicas: a global
  `batch_size` must divide over them (`batch_size_per_replica` always
  does)."""
  problems = Problems()
  if dataset.WhichOneof('batch') != 'batch_size_per_replica':
    problems.require(
        dataset.batch_size % num_replicas == 0, f'{name}.batch_size',
        dataset.batch_size,
        f'does not divide over the {num_replicas} replicas; set a multiple '
        f'of {num_replicas}, or batch_size_per_replica (images per replica, '
        'any replica count)')
  return problems.lines


def eval_batch_per_replica(dataset, num_replicas: int) -> int:
  """Images per replica of an evaluation batch (`eval_batch_problems` must
  be empty)."""
  if dataset.WhichOneof('batch') == 'batch_size_per_replica':
    return dataset.batch_size_per_replica
  return dataset.batch_size // num_replicas


# ---- trainer_options -------------------------------------------------------

def _check_trainer(trainer, problems: Problems):
  for field in ('save_checkpoints_steps', 'save_summaries_steps',
                'steps_per_loop', 'num_checkpoints_to_keep'):
    problems.at_least(f'trainer_options.{field}', getattr(trainer, field), 1)
  if trainer.steps_per_loop >= 1 and (
      trainer.save_summaries_steps % trainer.steps_per_loop):
    problems.add('trainer_options.save_summaries_steps',
                 trainer.save_summaries_steps,
                 f'must be a multiple of steps_per_loop '
                 f'({trainer.steps_per_loop})')
  problems.extend(loss_problems(trainer.loss_options))
  problems.extend(solver_problems(trainer.solver_options))


def loss_problems(loss: trainer_pb2.LossOptions) -> List[str]:
  """Problems of `trainer_options.loss_options` (also read by the loss
  builder)."""
  problems = Problems()
  path = 'trainer_options.loss_options'
  # Every loss term is a message with a `weight`: a new term is checked
  # here without being listed.
  terms = [field.name for field in loss.DESCRIPTOR.fields
           if field.message_type is not None
           and 'weight' in field.message_type.fields_by_name]
  for term in terms:
    weight = getattr(loss, term).weight
    problems.require(finite(weight) and weight >= 0,
                     f'{path}.{term}.weight', weight,
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
  problems.require(finite(discrimination.sample_temperature) and
                   discrimination.sample_temperature >= 0,
                   f'{where}.sample_temperature',
                   discrimination.sample_temperature,
                   'must be a finite number >= 0')
  return problems.lines


def solver_problems(solver) -> List[str]:
  """Problems of `trainer_options.solver_options` (also read by the
  optimiser)."""
  problems = Problems()
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
    problems.require(finite(value) and value >= 0, f'{path}.{field}',
                     value, 'must be a finite number >= 0')
  steps = solver.training_number_of_steps
  problems.at_least(f'{path}.training_number_of_steps', steps, 1)
  problems.require(0 <= solver.warmup_steps < max(steps, 1),
                   f'{path}.warmup_steps', solver.warmup_steps,
                   f'must be >= 0 and < training_number_of_steps ({steps})')
  problems.extend(batchnorm_problems(solver))
  for field in ('adam_beta_1', 'adam_beta_2', 'sgd_momentum'):
    problems.in_range(f'{path}.{field}', getattr(solver, field), 0, 1,
                      high_open=True)
  problems.positive(f'{path}.adam_epsilon', solver.adam_epsilon)
  return problems.lines


def batchnorm_problems(solver) -> List[str]:
  """Problems of the BatchNorm fields of `solver_options` (also read by
  `cmt.model.builder`)."""
  problems = Problems()
  path = 'trainer_options.solver_options'
  problems.in_range(f'{path}.batchnorm_momentum', solver.batchnorm_momentum,
                    0, 1, high_open=True)
  problems.positive(f'{path}.batchnorm_epsilon', solver.batchnorm_epsilon)
  return problems.lines


# ---- evaluator_options -----------------------------------------------------

def evaluator_problems(evaluator: _Evaluator) -> List[str]:
  """Problems of `evaluator_options` (also read by post-processing)."""
  problems = Problems()
  path = 'evaluator_options'
  problems.enum_set(f'{path}.post_processing', evaluator.post_processing,
                    _Evaluator.PostProcessing.DESCRIPTOR,
                    _Evaluator.POST_PROCESSING_UNSPECIFIED)
  for field in ('thing_class_threshold', 'stuff_class_threshold',
                'pixel_confidence_threshold', 'overlap_threshold'):
    problems.in_range(f'{path}.{field}', getattr(evaluator, field), 0, 1)
  for field in ('class_score_power', 'mask_score_power'):
    value = getattr(evaluator, field)
    problems.require(finite(value) and value >= 0, f'{path}.{field}',
                     value, 'must be a finite number >= 0')
  for field in ('thing_area_limit', 'stuff_area_limit', 'num_summary_images',
                'eval_steps', 'eval_interval_steps'):
    problems.at_least(f'{path}.{field}', getattr(evaluator, field), 0)
  return problems.lines

"""Builds a run from an ExperimentOptions and drives it with orbit.Controller.

Modes (DeepLab2's): `train`, `eval` (the latest checkpoint once),
`train_and_eval` (evaluate every `eval_interval_steps`), `continuous_eval`
(evaluate each new checkpoint until the last step is evaluated or
`continuous_eval_timeout` seconds pass without one).
"""

import contextlib
import dataclasses
import os
from typing import Callable, Optional

from absl import logging
import orbit
import tensorflow as tf
import tf_keras

from cmt import config as config_lib
from cmt import config_checks
from cmt.protos import config_pb2
from cmt.protos import model_pb2
from cmt.trainer import checkpoints
from cmt.trainer import eval_loop
from cmt.trainer import optimizer as optimizer_lib
from cmt.trainer import strategy as strategy_lib
from cmt.trainer import trainer as trainer_lib


@dataclasses.dataclass
class Builders:
  """Where a run's pieces come from (the real ones: `default_builders()`)."""
  get_dataset_info: Callable
  build_model: Callable
  # (model, model_options) -> what initial_checkpoint provides: restored by
  # restore_scope BACKBONE, learning at backbone_learning_rate_multiplier.
  pretrained_variables: Callable
  build_loss: Callable
  build_dataset: Callable
  post_process: Optional[Callable] = None
  make_panoptic_evaluator: Optional[Callable] = None
  # build_dataset(options, info, is_training, input_context, [skip_examples]):
  # skip_examples is passed only to resume seeded input on a strategy whose
  # input iterator cannot be checkpointed.
  # Evaluation inputs (`cmt.data.eval_inputs`): the device dataset
  # (options, info, input_context) and the host-only examples (options,
  # info) in the same order.
  build_eval_dataset: Optional[Callable] = None
  host_examples: Optional[Callable] = None


def default_builders() -> Builders:
  """The library's model, loss, data pipeline and evaluator."""
  # pylint: disable=g-import-not-at-top
  from cmt.data import dataset_info
  from cmt.data import eval_inputs
  from cmt.data import pipeline
  from cmt.model import builder
  from cmt.model.loss import builder as loss_builder

  def post_process(outputs, evaluator_options, info, crop_size):
    from cmt.model import post_processing
    return post_processing.post_process(outputs, evaluator_options, info,
                                        crop_size)

  def make_panoptic_evaluator(info, evaluator_options, output_dir):
    from cmt.evaluation import evaluator
    return evaluator.PanopticEvaluator(info, evaluator_options,
                                       output_dir=output_dir)

  return Builders(
      get_dataset_info=dataset_info.get_dataset_info,
      build_model=builder.build_model,
      pretrained_variables=builder.pretrained_variables,
      build_loss=loss_builder.build_loss,
      build_dataset=pipeline.build_dataset,
      post_process=post_process,
      make_panoptic_evaluator=make_panoptic_evaluator,
      build_eval_dataset=eval_inputs.build_device_dataset,
      host_examples=eval_inputs.host_examples)


@contextlib.contextmanager
def precision_policy(solver):
  """Sets the Keras policy of `solver.precision` while building and running."""
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(
      optimizer_lib.precision_policy_name(solver))
  try:
    yield
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)


def use_jit_compile(options: config_pb2.ExperimentOptions,
                    strategy: tf.distribute.Strategy) -> bool:
  """`trainer_options.jit_compile`; unset: on for TPU only."""
  trainer_options = options.trainer_options
  if trainer_options.HasField('jit_compile'):
    return trainer_options.jit_compile
  return strategy_lib.is_tpu_strategy(strategy)


def _is_chief(strategy) -> bool:
  return getattr(strategy.extended, 'should_checkpoint', True)


def _worker_dir(model_dir: str, strategy) -> str:
  """Chief: model_dir. Other workers write throw-away copies elsewhere."""
  if _is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir, 'workers',
                      f'{resolver.task_type}_{resolver.task_id}')


def _require_eval_batch(options, strategy, config_file: str):
  """A global evaluation batch that does not divide over the replicas is
  refused in one line, before anything is built."""
  problems = config_checks.eval_batch_problems(
      options.eval_dataset_options, strategy.num_replicas_in_sync)
  if problems:
    prefix = f'{config_file}: ' if config_file else ''
    raise config_lib.ConfigError(prefix + '; '.join(problems))


@dataclasses.dataclass
class Run:
  """Everything `run_experiment` built (tests inspect it)."""
  model: tf_keras.Model
  optimizer: object
  controller: orbit.Controller
  trainer: Optional[trainer_lib.CMTTrainer]
  evaluator: Optional[eval_loop.CMTEvaluator]
  checkpoint_manager: tf.train.CheckpointManager


def build_run(mode: str, options: config_pb2.ExperimentOptions,
              model_dir: str, strategy: tf.distribute.Strategy,
              builders: Optional[Builders] = None,
              config_file: str = '', print_fn=None) -> Run:
  """Builds model, optimiser, checkpoints, trainer/evaluator and controller.

  Call inside `precision_policy(solver)`.
  """
  if mode not in config_checks.MODES:
    raise ValueError(f'--mode={mode!r}: choose one of '
                     f'{", ".join(config_checks.MODES)}')
  builders = builders or default_builders()
  # Every check of the config, before anything is built (cmt.config_checks).
  config_lib.require_runnable(options, config_checks.MODE_PURPOSES[mode],
                              config_file)
  if mode != 'train':
    _require_eval_batch(options, strategy, config_file)
  trains = mode in ('train', 'train_and_eval')
  dataset_options = (options.train_dataset_options if trains
                     else options.eval_dataset_options)
  dataset_info = builders.get_dataset_info(dataset_options)
  jit_compile = use_jit_compile(options, strategy)
  model, optimizer = _build_model_and_optimizer(
      options, dataset_options, dataset_info, builders, strategy, jit_compile)
  trainer, train_actions, train_iterator = None, [], None
  if trains:
    trainer, train_actions, train_iterator = _build_trainer(
        options, dataset_info, builders, strategy, model, optimizer,
        jit_compile, print_fn)
  work_dir = _worker_dir(model_dir, strategy)
  manager = _build_checkpoint_manager(options, dataset_info, builders,
                                      strategy, model, optimizer,
                                      train_iterator, work_dir, trains,
                                      chief_dir=model_dir)
  evaluator = None
  if mode != 'train':
    evaluator = _build_evaluator(options, builders, strategy, model,
                                 optimizer, work_dir, jit_compile,
                                 config_file)
  should_summarize = getattr(strategy.extended, 'should_save_summary', True)
  trainer_options = options.trainer_options
  controller = orbit.Controller(
      global_step=optimizer.iterations, trainer=trainer, evaluator=evaluator,
      strategy=strategy, train_actions=train_actions,
      steps_per_loop=trainer_options.steps_per_loop if trains else None,
      checkpoint_manager=manager,
      summary_interval=(trainer_options.save_summaries_steps
                        if trains and should_summarize else None),
      summary_dir=(os.path.join(model_dir, 'train')
                   if should_summarize else None),
      eval_summary_dir=(os.path.join(model_dir, 'eval')
                        if should_summarize else None))
  return Run(model, optimizer, controller, trainer, evaluator, manager)


def _build_model_and_optimizer(options, dataset_options, dataset_info,
                               builders: Builders, strategy, jit_compile):
  """The model with every variable created, and its optimiser."""
  tpu = strategy_lib.is_tpu_strategy(strategy)
  with strategy.scope():
    model = builders.build_model(options, dataset_info)
    # One call creates every variable (before checkpoints are restored).
    model(tf.zeros([1, *dataset_options.crop_size, 3]), training=False)
    optimizer = optimizer_lib.build_optimizer(
        options.trainer_options.solver_options,
        builders.pretrained_variables(model, options.model_options),
        jit_compile=jit_compile and not tpu)
    optimizer.build(model.trainable_variables)
  return model, optimizer


def _build_trainer(options, dataset_info, builders: Builders, strategy,
                   model, optimizer, jit_compile, print_fn):
  """(trainer, its progress action, the input iterator to checkpoint or
  None).

  Seeded input keeps its position across a resume. On one device the input
  iterator is checkpointed (with its shuffle buffer). A distributed iterator
  cannot be, so there the input is built when training starts and skips the
  examples of the steps already done (`skip_examples` of `build_dataset`):
  the same stream, at the cost of reading those records again.
  """
  dataset_options = options.train_dataset_options
  global_batch = dataset_options.batch_size
  strategy_lib.per_replica_batch(strategy, global_batch,
                                 'train_dataset_options.batch_size')

  def distributed_dataset(done_steps: int = 0):
    def dataset_fn(context):
      skip = {}
      if done_steps:  # each input pipeline took its share of every batch
        skip['skip_examples'] = (done_steps * global_batch //
                                 context.num_input_pipelines)
      return builders.build_dataset(
          dataset_options, dataset_info, is_training=True,
          input_context=context, **skip).map(trainer_lib.numeric_features)
    return strategy.distribute_datasets_from_function(dataset_fn)

  seeded = bool(dataset_options.seed)
  checkpointed = seeded and _iterator_checkpointable(strategy)
  if seeded and not checkpointed:
    logging.info('Seeded input under %s: its iterator cannot be '
                 'checkpointed; a resumed run skips the examples of the steps '
                 'done instead', type(strategy).__name__)
    train_data = _InputFromStep(distributed_dataset, optimizer.iterations)
  else:
    train_data = distributed_dataset()
  loss_fn = builders.build_loss(options, dataset_info)
  trainer = trainer_lib.CMTTrainer(options, strategy, model, loss_fn,
                                   optimizer, train_data, jit_compile)
  progress = trainer_lib.ProgressLine(
      trainer, options.trainer_options.solver_options.training_number_of_steps,
      global_batch, print_fn)
  train_iterator = trainer.make_train_iterator() if checkpointed else None
  return trainer, [progress], train_iterator


def _iterator_checkpointable(strategy) -> bool:
  """Only the default (one-device) strategy's input iterator is trackable;
  MirroredStrategy's, MultiWorkerMirroredStrategy's and TPUStrategy's are
  not."""
  return (not tf.distribute.has_strategy() and
          strategy is tf.distribute.get_strategy())


class _InputFromStep:
  """A seeded training input built when the trainer first iterates it (after
  the checkpoint restore), from the example the restored step reached."""

  def __init__(self, distributed_dataset: Callable, step: tf.Variable):
    self._distributed_dataset = distributed_dataset
    self._step = step

  def __iter__(self):
    done_steps = int(self._step.numpy())
    if done_steps:
      logging.info('Seeded input: resuming after step %d (skipping the '
                   'examples it used)', done_steps)
    return iter(self._distributed_dataset(done_steps))


def _build_checkpoint_manager(options, dataset_info, builders: Builders,
                              strategy, model, optimizer, train_iterator,
                              work_dir: str, trains: bool, chief_dir: str):
  """The manager of `work_dir`'s checkpoints; without one yet, a worker other
  than the chief restores the chief's latest (in `chief_dir`: its own are
  thrown away), and otherwise it warm starts from
  `model_options.initial_checkpoint` (ours or DeepLab2's)."""
  with strategy.scope():
    checkpoint = checkpoints.build_checkpoint(model, optimizer, train_iterator)
  init_fn = None
  model_options = options.model_options
  if model_options.initial_checkpoint:
    def from_deeplab2(reader, resolved):
      from cmt.deeplab2 import checkpoint as deeplab2_checkpoint  # pylint: disable=g-import-not-at-top
      return deeplab2_checkpoint.warm_start(
          model, reader, resolved, options, dataset_info,
          backbone_only=(model_options.restore_scope ==
                         model_pb2.ModelOptions.BACKBONE))

    def init_fn():
      checkpoints.warm_start(
          model, model_options.initial_checkpoint,
          model_options.restore_scope,
          builders.pretrained_variables(model, model_options),
          foreign=from_deeplab2)
  if not _is_chief(strategy):
    init_fn = _restore_chief_checkpoint(checkpoint, chief_dir, init_fn)
  if trains and _is_chief(strategy):
    checkpoints.remove_unfinished_saves(work_dir)
  trainer_options = options.trainer_options
  return checkpoints.build_checkpoint_manager(
      checkpoint, work_dir, optimizer.iterations,
      trainer_options.save_checkpoints_steps,
      trainer_options.num_checkpoints_to_keep, init_fn=init_fn)


def _restore_chief_checkpoint(checkpoint, chief_dir: str, otherwise):
  """init_fn restoring the chief's latest checkpoint, so every worker resumes
  at the same step; `otherwise` (or nothing) when there is none."""
  def init_fn():
    latest = tf.train.latest_checkpoint(chief_dir)
    if latest:
      checkpoint.restore(latest)
      logging.info('restored the chief\'s checkpoint %s', latest)
    elif otherwise is not None:
      otherwise()
  return init_fn


def _build_evaluator(options, builders: Builders, strategy, model, optimizer,
                     work_dir: str, jit_compile, config_file: str
                     ) -> eval_loop.CMTEvaluator:
  """The eval loop: each input pipeline reads its share of the evaluation
  set; the process that receives the outputs scores them all."""
  eval_info = builders.get_dataset_info(options.eval_dataset_options)
  replicas = strategy.num_replicas_in_sync
  per_replica = config_checks.eval_batch_per_replica(
      options.eval_dataset_options, replicas)
  logging.info('Evaluation batch: %d images = %d per replica x %d replicas',
               per_replica * replicas, per_replica, replicas)
  eval_data = strategy.distribute_datasets_from_function(
      lambda context: builders.build_eval_dataset(
          options.eval_dataset_options, eval_info, input_context=context))
  predictions_dir = None
  if options.evaluator_options.save_predictions:
    predictions_dir = os.path.join(work_dir, 'eval',
                                   eval_loop.PREDICTIONS_FOLDER)
  return eval_loop.CMTEvaluator(
      options, strategy, model, eval_data,
      lambda: builders.host_examples(options.eval_dataset_options, eval_info),
      eval_info, builders.post_process,
      builders.make_panoptic_evaluator(eval_info, options.evaluator_options,
                                       predictions_dir),
      work_dir, optimizer.iterations, jit_compile=jit_compile,
      config_file=config_file)


def _evaluate_continuously(run: Run, model_dir: str, eval_steps: int,
                           total_steps: int, timeout: int):
  """Evaluates each new checkpoint; stops after the final step's one, or
  when `timeout` (>= 0) seconds pass without a new checkpoint."""
  for path in tf.train.checkpoints_iterator(
      model_dir, timeout=None if timeout < 0 else timeout):
    run.controller.restore_checkpoint(path)
    run.controller.evaluate(steps=eval_steps)
    if int(run.optimizer.iterations.numpy()) >= total_steps:
      return
  logging.info('continuous_eval: no new checkpoint in %d s; stopping',
               timeout)


@contextlib.contextmanager
def _named_data_errors(options, mode: str):
  """TensorFlow's errors about the records read (a truncated shard, classes
  the config does not have) as one `DataError` naming them."""
  purposes = config_checks.MODE_PURPOSES.get(mode, ())
  datasets = {name: getattr(options, name) for name, purpose in (
      ('train_dataset_options', config_checks.TRAIN),
      ('eval_dataset_options', config_checks.EVAL)) if purpose in purposes}
  try:
    yield
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
    from cmt.data import record_errors  # pylint: disable=g-import-not-at-top
    explained = record_errors.explain(error, datasets)
    if explained is None:
      raise
    raise explained from None


def run_experiment(mode: str, options: config_pb2.ExperimentOptions,
                   model_dir: str, strategy: tf.distribute.Strategy,
                   builders: Optional[Builders] = None,
                   config_file: str = '', print_fn=None) -> Run:
  """Builds the run (see `build_run`) and runs `mode` to its end."""
  solver = options.trainer_options.solver_options
  evaluator_options = options.evaluator_options
  eval_steps = evaluator_options.eval_steps or -1
  total_steps = solver.training_number_of_steps
  with precision_policy(solver), _named_data_errors(options, mode):
    run = build_run(mode, options, model_dir, strategy, builders,
                    config_file, print_fn)
    controller = run.controller
    if mode == 'train':
      controller.train(steps=total_steps)
    elif mode == 'train_and_eval':
      interval = (evaluator_options.eval_interval_steps or
                  options.trainer_options.save_checkpoints_steps)
      controller.train_and_evaluate(train_steps=total_steps,
                                    eval_steps=eval_steps,
                                    eval_interval=interval)
    elif mode == 'eval':
      if run.checkpoint_manager.latest_checkpoint is None:
        raise ValueError(f'--mode=eval: no checkpoint in {model_dir}')
      controller.evaluate(steps=eval_steps)
    else:
      _evaluate_continuously(run, model_dir, eval_steps, total_steps,
                             evaluator_options.continuous_eval_timeout)
  if not _is_chief(strategy):
    tf.io.gfile.rmtree(_worker_dir(model_dir, strategy))
  return run

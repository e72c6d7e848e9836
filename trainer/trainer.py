"""The Orbit train loop: one optimisation step of Sec. 3.5, on any strategy.

Per replica r holding b = B / R images of the global batch B:

    L_r   = total loss of `build_loss` averaged over the b local images
            (+ the L2 term of `optimizer.l2_regularization` when it applies)
    g_r   = d (L_r / R) / d theta          (loss scaled for float16)
    g     = sum_r g_r                      (all-reduce; = d mean_r L_r)
    g     <- g * min(1, c / ||g||_2)        (global-norm clipping, c > 0)
    theta <- optimiser(theta, g)            (per-variable learning rate)

so R replicas take the same step as one device on the whole batch.
The forward/backward pass (`compute_gradients`) is what XLA compiles when
`jit_compile` is on; it holds no host callbacks.
"""

import time
from typing import Callable, Mapping, Optional

import orbit
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.model.loss import builder as loss_builder
from cmt.protos import config_pb2
from cmt.trainer import optimizer as optimizer_lib

L2_REGULARIZATION = 'l2_regularization'
# Every loss the trainer may report, in a fixed order (non-finite flags): the
# loss terms, their total and the L2 term.
REPORTED_LOSSES = loss_builder.LOSS_NAMES + (common.LOSS_TOTAL,
                                             L2_REGULARIZATION)


# What a train step reads of a batch: the model its image, the loss its
# ground truth. Nothing else is sent to the device (at a 1281 x 1281 crop
# each unread [H, W] target would cost 6.6 MB per image and step).
DEVICE_KEYS = (common.IMAGE,) + loss_builder.GROUND_TRUTH_KEYS


def numeric_features(batch: Mapping) -> dict:
  """The features of the batch that the train step reads (`DEVICE_KEYS`):
  numbers only, as TPU infeed and XLA need; image names, sizes and the
  host-side targets (GT_PANOPTIC, GT_CROWD, GT_PIXEL_WEIGHT) stay on the
  host."""
  return {key: value for key, value in batch.items() if key in DEVICE_KEYS}


class NonFiniteLossError(FloatingPointError):
  """Raised when a loss went NaN or infinite (stop_on_nonfinite_loss)."""


def _to_float32(outputs):
  """Casts every floating model output to float32 (losses in float32)."""
  def cast(value):
    if isinstance(value, tf.Tensor) and value.dtype.is_floating:
      return tf.cast(value, tf.float32)
    return value
  return tf.nest.map_structure(cast, outputs)


class CMTTrainer(orbit.StandardTrainer):
  """StandardTrainer over {model, loss, optimiser} built from the config."""

  def __init__(self, options: config_pb2.ExperimentOptions,
               strategy: tf.distribute.Strategy, model: tf_keras.Model,
               loss_fn: Callable[[Mapping, Mapping], Mapping[str, tf.Tensor]],
               optimizer, train_dataset, jit_compile: bool):
    """`train_dataset` is a distributed dataset (or a function making one)."""
    super().__init__(
        train_dataset,
        options=orbit.StandardTrainerOptions(use_tf_while_loop=True))
    self._options = options
    self._solver = options.trainer_options.solver_options
    self._strategy = strategy
    self._model = model
    self._loss_fn = loss_fn
    self._optimizer = optimizer
    self._loss_scaled = isinstance(
        optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
    self._global_batch_size = options.train_dataset_options.batch_size
    with strategy.scope():
      self._loss_metrics = {name: tf_keras.metrics.Mean(name, dtype=tf.float32)
                            for name in REPORTED_LOSSES}
      # First step whose losses were non-finite (-1: none) and which losses.
      self._nonfinite_step = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                         name='nonfinite_step')
      self._nonfinite_flags = tf.Variable(
          tf.zeros([len(REPORTED_LOSSES)], tf.bool), trainable=False,
          name='nonfinite_flags')
    self.compute_gradients = (
        tf.function(self._compute_gradients, jit_compile=True)
        if jit_compile else self._compute_gradients)
    self._loop_start_time = None
    self._loop_start_step = None
    self.last_loop = {}

  def make_train_iterator(self):
    """Creates the input iterator now (so a checkpoint can track it)."""
    if self._train_iter is None:
      self._train_iter = tf.nest.map_structure(iter, self.train_dataset)
    return self._train_iter

  @property
  def model(self):
    return self._model

  @property
  def optimizer(self):
    return self._optimizer

  @property
  def global_step(self) -> tf.Variable:
    return self._optimizer.iterations

  def _compute_gradients(self, inputs):
    """Forward and backward pass of one replica: (losses, gradients)."""
    variables = self._model.trainable_variables
    with tf.GradientTape() as tape:
      outputs = _to_float32(self._model(inputs[common.IMAGE], training=True))
      losses = dict(self._loss_fn(inputs, outputs))
      if common.LOSS_TOTAL not in losses:
        raise KeyError(f'the loss returned {sorted(losses)} without '
                       f'{common.LOSS_TOTAL!r}')
      objective = losses[common.LOSS_TOTAL]
      l2 = optimizer_lib.l2_regularization(self._solver, variables)
      if l2 is not None:
        losses[L2_REGULARIZATION] = l2
        objective = objective + l2
      # Each replica holds 1/R of the batch; the all-reduce sums (Eq. above).
      objective = objective / self._strategy.num_replicas_in_sync
      if self._loss_scaled:
        objective = self._optimizer.get_scaled_loss(objective)
    gradients = tape.gradient(objective, variables)
    if self._loss_scaled:
      gradients = self._optimizer.get_unscaled_gradients(gradients)
    return losses, gradients

  def _replica_step(self, inputs):
    losses, gradients = self.compute_gradients(inputs)
    variables = self._model.trainable_variables
    clip_norm = self._solver.gradient_clip_norm
    if clip_norm > 0:
      # Clipping needs the global gradient: reduce first, then clip.
      context = tf.distribute.get_replica_context()
      gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
      gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
      self._optimizer.apply_gradients(zip(gradients, variables),
                                      skip_gradients_aggregation=True)
    else:
      self._optimizer.apply_gradients(zip(gradients, variables))
    for name, value in losses.items():
      if name in self._loss_metrics:
        self._loss_metrics[name].update_state(value)
    return losses

  def train_step(self, iterator):
    losses = self._strategy.run(self._replica_step, args=(next(iterator),))
    losses = {name: self._strategy.reduce(tf.distribute.ReduceOp.MEAN, value,
                                          axis=None)
              for name, value in losses.items()}
    flags = tf.stack([
        tf.logical_not(tf.math.is_finite(losses[name])) if name in losses
        else tf.constant(False) for name in REPORTED_LOSSES])
    first = tf.logical_and(self._nonfinite_step < 0, tf.reduce_any(flags))
    self._nonfinite_step.assign(tf.where(
        first, tf.cast(self.global_step, tf.int64), self._nonfinite_step))
    self._nonfinite_flags.assign(tf.where(first, flags, self._nonfinite_flags))

  def train_loop_begin(self):
    for metric in self._loss_metrics.values():
      metric.reset_state()
    self._loop_start_time = time.time()
    self._loop_start_step = int(self.global_step.numpy())

  def train_loop_end(self):
    step = int(self.global_step.numpy())
    seconds = max(time.time() - self._loop_start_time, 1e-9)
    steps = step - self._loop_start_step
    self._check_finite(step)
    output = {f'losses/{name}': metric.result()
              for name, metric in self._loss_metrics.items()
              if metric.count.numpy() > 0}
    output['learning_rate'] = optimizer_lib.current_learning_rate(
        self._optimizer, self.global_step)
    output['images_per_second'] = steps * self._global_batch_size / seconds
    self.last_loop = {'step': step, 'steps': steps, 'seconds': seconds,
                      'loss': float(output.get(
                          f'losses/{common.LOSS_TOTAL}', float('nan')))}
    return output

  def _check_finite(self, step: int):
    bad_step = int(self._nonfinite_step.numpy())
    if bad_step < 0:
      return
    flags = self._nonfinite_flags.numpy()
    names = [name for name, bad in zip(REPORTED_LOSSES, flags) if bad]
    message = (f'non-finite loss at step {bad_step}: {", ".join(names)} '
               'went NaN or infinite')
    if self._options.trainer_options.stop_on_nonfinite_loss:
      raise NonFiniteLossError(
          message + f'; stopping at step {step} without saving a checkpoint '
          '(trainer_options.stop_on_nonfinite_loss); lower '
          'solver_options.base_learning_rate or set gradient_clip_norm')
    tf.get_logger().warning(message + '; continuing '
                            '(stop_on_nonfinite_loss is false)')
    self._nonfinite_step.assign(-1)


class ProgressLine:
  """Orbit train action: prints step, loss, speed and ETA after each loop."""

  def __init__(self, trainer: CMTTrainer, total_steps: int,
               batch_size: int, print_fn: Optional[Callable] = None):
    self._trainer = trainer
    self._total_steps = total_steps
    self._batch_size = batch_size
    self._print = print_fn or (lambda line: print(line, flush=True))

  def __call__(self, unused_output):
    loop = self._trainer.last_loop
    if not loop or not loop['steps']:
      return
    steps_per_second = loop['steps'] / loop['seconds']
    remaining = max(self._total_steps - loop['step'], 0) / steps_per_second
    self._print(
        f'step {loop["step"]}/{self._total_steps} | loss {loop["loss"]:.4f} | '
        f'{steps_per_second:.2f} steps/s, '
        f'{steps_per_second * self._batch_size:.1f} images/s | '
        f'ETA {_format_seconds(remaining)}')


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}h{minutes:02d}m{seconds:02d}s' if hours else (
      f'{minutes}m{seconds:02d}s')

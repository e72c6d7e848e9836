"""The optimiser of `SolverOptions`: schedule, backbone multiplier, decay.

Learning rate (DeepLab2's poly schedule with linear warm-up):

    poly(t) = (base - end) * (1 - min(t, T) / T) ^ power + end
    lr(t)   = poly(T_w) * t / T_w      for t < T_w   (linear warm-up)
    lr(t)   = poly(t)                  otherwise

(continuous at T_w; `official.modeling`'s LinearWarmup over tf_keras'
PolynomialDecay) with T_w = `warmup_steps` and T = `training_number_of_steps`. Variables in
`pretrained_variables(model, model_options)` (the backbone restored from
`initial_checkpoint`, every stack's) learn at
`backbone_learning_rate_multiplier` x lr(t); everything else at lr(t).

Weight decay lambda = `weight_decay` applies to convolution / dense kernels
only (not biases, norms or embeddings):
  * ADAMW: decoupled, w <- w - lr_v(t) * lambda * w before each update;
  * ADAM, SGD: an L2 term lambda / 2 * sum ||w||^2 added to the loss
    (`l2_regularization`).
"""

from typing import Iterable, Optional, Sequence

from official.modeling.optimization import lr_schedule
import tensorflow as tf
import tf_keras

from cmt import config_checks
from cmt.protos import trainer_pb2

Solver = trainer_pb2.SolverOptions


def _check_solver(solver: Solver):
  """ValueError naming every bad field (the checks of `cmt.config_checks`)."""
  problems = config_checks.solver_problems(solver)
  if problems:
    raise ValueError('; '.join(problems))


def build_learning_rate_schedule(
    solver: Solver) -> tf_keras.optimizers.schedules.LearningRateSchedule:
  """The poly schedule with linear warm-up of the module docstring."""
  _check_solver(solver)
  poly = tf_keras.optimizers.schedules.PolynomialDecay(
      initial_learning_rate=solver.base_learning_rate,
      decay_steps=solver.training_number_of_steps,
      end_learning_rate=solver.poly_end_learning_rate,
      power=solver.poly_learning_power)
  if solver.warmup_steps == 0:
    return poly
  return lr_schedule.LinearWarmup(
      after_warmup_lr_sched=poly, warmup_steps=solver.warmup_steps,
      warmup_learning_rate=0.0)


def is_decayed_kernel(variable: tf.Variable) -> bool:
  """Whether weight decay applies: conv / dense kernels only."""
  leaf = variable.name.split('/')[-1].split(':')[0]
  return leaf.endswith('kernel')


def _with_per_variable_learning_rate(base_class):
  """`base_class` whose update of chosen variables uses a scaled lr.

  Adam, AdamW and SGD (with momentum) updates are proportional to the
  learning rate for a fixed gradient history, so scaling the learning rate
  a variable sees is exactly a per-variable learning rate. The decoupled
  weight decay (ADAMW) is applied here too, per variable, with the same
  scaled learning rate.
  """

  class PerVariableLearningRate(base_class):

    def __init__(self, *args, lr_multiplied_variables=(), lr_multiplier=1.0,
                 decoupled_weight_decay=0.0, **kwargs):
      super().__init__(*args, **kwargs)
      self._lr_multiplied = list(lr_multiplied_variables)
      self._lr_multiplier = float(lr_multiplier)
      self._decoupled_weight_decay = float(decoupled_weight_decay)
      self._multiplied_keys = None
      self._active_multiplier = 1.0

    @property
    def learning_rate(self):
      lr = super().learning_rate
      if self._active_multiplier != 1.0:
        lr = lr * self._active_multiplier
      return lr

    @learning_rate.setter
    def learning_rate(self, value):
      base_class.learning_rate.fset(self, value)

    def multiplier_of(self, variable) -> float:
      if self._multiplied_keys is None:
        self._multiplied_keys = {self._var_key(v) for v in self._lr_multiplied}
      key = self._var_key(variable)
      return self._lr_multiplier if key in self._multiplied_keys else 1.0

    def update_step(self, gradient, variable):
      self._active_multiplier = self.multiplier_of(variable)
      try:
        if self._decoupled_weight_decay and is_decayed_kernel(variable):
          lr = tf.cast(self.learning_rate, variable.dtype)
          variable.assign_sub(
              variable * tf.cast(self._decoupled_weight_decay,
                                 variable.dtype) * lr)
        return super().update_step(gradient, variable)
      finally:
        self._active_multiplier = 1.0

  PerVariableLearningRate.__name__ = base_class.__name__ + 'PerVariableLR'
  return PerVariableLearningRate


_AdamPerVariable = _with_per_variable_learning_rate(tf_keras.optimizers.Adam)
_SGDPerVariable = _with_per_variable_learning_rate(tf_keras.optimizers.SGD)


def build_optimizer(solver: Solver,
                    backbone_variables: Sequence[tf.Variable] = (),
                    jit_compile: bool = False,
                    loss_scaling: Optional[bool] = None):
  """The optimiser of `solver`; wrap it in dynamic loss scaling for fp16.

  Args:
    solver: the SolverOptions.
    backbone_variables: the variables learning at
      `backbone_learning_rate_multiplier` x lr (pretrained backbone).
    jit_compile: compile each variable's update with XLA.
    loss_scaling: wrap in a LossScaleOptimizer; default: when `precision`
      is MIXED_FLOAT16.
  """
  schedule = build_learning_rate_schedule(solver)  # checks `solver`
  common = dict(learning_rate=schedule, jit_compile=jit_compile,
                lr_multiplied_variables=backbone_variables,
                lr_multiplier=solver.backbone_learning_rate_multiplier)
  if solver.optimizer in (Solver.ADAM, Solver.ADAMW):
    decoupled = solver.weight_decay if solver.optimizer == Solver.ADAMW else 0.0
    optimizer = _AdamPerVariable(
        beta_1=solver.adam_beta_1, beta_2=solver.adam_beta_2,
        epsilon=solver.adam_epsilon, decoupled_weight_decay=decoupled,
        **common)
  elif solver.optimizer == Solver.SGD:
    optimizer = _SGDPerVariable(momentum=solver.sgd_momentum, **common)
  else:  # An enum value without an implementation here.
    raise ValueError('trainer_options.solver_options.optimizer = '
                     f'{Solver.Optimizer.Name(solver.optimizer)}: not '
                     'implemented')
  if loss_scaling is None:
    loss_scaling = solver.precision == Solver.MIXED_FLOAT16
  if loss_scaling:
    optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
  return optimizer


def l2_regularization(solver: Solver,
                      variables: Iterable[tf.Variable]) -> Optional[tf.Tensor]:
  """lambda / 2 * sum ||w||^2 over kernels, for ADAM and SGD (None if off)."""
  if solver.weight_decay == 0 or solver.optimizer == Solver.ADAMW:
    return None
  kernels = [v for v in variables if is_decayed_kernel(v)]
  if not kernels:
    return None
  return solver.weight_decay * tf.add_n(
      [tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])


PRECISION_POLICIES = {
    Solver.FLOAT32: 'float32',
    Solver.MIXED_BFLOAT16: 'mixed_bfloat16',
    Solver.MIXED_FLOAT16: 'mixed_float16',
}


def precision_policy_name(solver: Solver) -> str:
  """The Keras dtype policy of `precision` (compute dtype, float32 vars)."""
  _check_solver(solver)
  return PRECISION_POLICIES[solver.precision]


def current_learning_rate(optimizer, step) -> tf.Tensor:
  """lr(step) at the base rate (no backbone multiplier)."""
  inner = getattr(optimizer, 'inner_optimizer', optimizer)
  schedule = inner._learning_rate  # pylint: disable=protected-access
  if isinstance(schedule, tf_keras.optimizers.schedules.LearningRateSchedule):
    return schedule(step)
  return tf.convert_to_tensor(schedule)

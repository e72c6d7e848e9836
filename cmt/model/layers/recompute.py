"""Gradient recomputation (rematerialisation) of blocks with tf.recompute_grad.

A recomputed block keeps only its inputs for the backward pass and runs its
forward again there (`model_options.recompute` chooses which kinds of block,
as DeepLab2's `conv_/axial_/transformer_use_recompute_grad`; the spec,
`cmt.model.spec`, marks each block). A block is a `Block`: whether it is
recomputed is its constructor argument, and calling it always runs through
`call`, so no call of a block can skip the seeding below. The gradients
are exactly those without recomputation, because the second forward repeats
the first one:

  * drop path: the masks come from stateless random ops whose seed is drawn
    *outside* the recomputed function and passed in, so both forwards drop
    the same examples. Every block call draws its masks this way, with or
    without recomputation, so switching it on does not change the masks;
  * BatchNorm: the recomputed forward normalises with the same batch
    statistics but skips the moving-average assignments, which the first
    forward already made (`BatchNormalization` below), so moving statistics
    are updated once per step.

The seed and the recomputing flag of the block being called are per-thread
call state (`_State`), set and restored around each block call.

  Block(..., recompute=False)          base class of the blocks
  configure(layer, enabled)            marks a layer for recomputation
  call(layer, inputs, training)        calls a layer (recomputed if marked)
  drop_path_seed(seed)                 fixes the drop-path seeds (tests)
  uniform_for_drop_path(shape, dtype)  the random numbers of one mask
"""

import contextlib
import threading
from typing import Optional

import tensorflow as tf
import tf_keras

_ATTRIBUTE = '_cmt_recompute_grad'
_INT32_MAX = 2**31 - 1


class _State(threading.local):

  def __init__(self):
    super().__init__()
    self.recomputing = False
    self.block_seed = None  # [2] int32 seed of the block being called.
    self.block_draws = 0  # Masks drawn so far in that block call.
    self.base_seed = None  # drop_path_seed(): seeds follow from this one.
    self.base_draws = 0


_STATE = _State()


def configure(layer: tf_keras.layers.Layer, enabled: bool) -> None:
  """Marks `layer` to be recomputed in the backward pass (or not)."""
  setattr(layer, _ATTRIBUTE, bool(enabled))


def is_recomputed(layer: tf_keras.layers.Layer) -> bool:
  return getattr(layer, _ATTRIBUTE, False)


def is_recomputing() -> bool:
  """True while a block's forward runs again in the backward pass."""
  return _STATE.recomputing


@contextlib.contextmanager
def drop_path_seed(seed: tf.Tensor):
  """Within this context the drop-path masks of block calls follow from
  `seed` ([2] int32) in call order, also under XLA, where stateful random
  ops ignore seeds. For tests comparing runs."""
  previous = (_STATE.base_seed, _STATE.base_draws)
  _STATE.base_seed, _STATE.base_draws = tf.cast(seed, tf.int32), 0
  try:
    yield
  finally:
    _STATE.base_seed, _STATE.base_draws = previous


def _draw_block_seed() -> tf.Tensor:
  if _STATE.base_seed is not None:
    _STATE.base_draws += 1
    return tf.random.experimental.stateless_fold_in(_STATE.base_seed,
                                                    _STATE.base_draws)
  return tf.random.uniform([2], maxval=_INT32_MAX, dtype=tf.int32)


def uniform_for_drop_path(shape, dtype) -> tf.Tensor:
  """Uniform [0, 1) numbers for one drop-path mask: stateless from the seed of
  the block being called (the same in its recomputation), else stateful."""
  if _STATE.block_seed is None:
    return tf.random.uniform(shape, dtype=dtype)
  _STATE.block_draws += 1
  seed = tf.random.experimental.stateless_fold_in(_STATE.block_seed,
                                                  _STATE.block_draws)
  return tf.cast(tf.random.stateless_uniform(shape, seed), dtype)


@contextlib.contextmanager
def _block_context(seed: Optional[tf.Tensor], recomputing: bool):
  previous = (_STATE.block_seed, _STATE.block_draws, _STATE.recomputing)
  _STATE.block_seed, _STATE.block_draws = seed, 0
  _STATE.recomputing = recomputing or _STATE.recomputing
  try:
    yield
  finally:
    _STATE.block_seed, _STATE.block_draws, _STATE.recomputing = previous


def _invoke(layer: tf_keras.layers.Layer, inputs, **kwargs):
  """Keras' own call of `layer` (for a `Block`, without re-entering `call`)."""
  return tf_keras.layers.Layer.__call__(layer, inputs, **kwargs)


def call(layer: tf_keras.layers.Layer, inputs, training=False, **kwargs):
  """`layer(inputs, training=training, **kwargs)`, recomputed in the
  backward pass if `configure`d so (training only; the layer must be built).
  `inputs` and the outputs may be nested structures of tensors and None."""
  if not training:
    return _invoke(layer, inputs, training=training, **kwargs)
  if _STATE.block_seed is not None:
    raise RuntimeError(f'{layer.name}: a block called inside another '
                       'block would draw its drop-path seed again in the '
                       'recomputation')
  seed = _draw_block_seed()
  if not (is_recomputed(layer) and layer.built):
    with _block_context(seed, recomputing=False):
      return _invoke(layer, inputs, training=True, **kwargs)

  flat_inputs = tf.nest.flatten(inputs)
  tensor_slots = [i for i, t in enumerate(flat_inputs) if t is not None]
  output_structure = []
  forward_calls = []

  def forward(*tensors):
    # The first call is the forward pass; any later one is the recomputation
    # in the backward pass.
    recomputing = bool(forward_calls)
    forward_calls.append(None)
    flat = list(flat_inputs)
    for slot, tensor in zip(tensor_slots, tensors):
      flat[slot] = tensor
    with _block_context(seed, recomputing):
      outputs = _invoke(layer, tf.nest.pack_sequence_as(inputs, flat),
                        training=True, **kwargs)
    flat_outputs = tf.nest.flatten(outputs)
    if not output_structure:
      output_structure.append(outputs)
    return [t for t in flat_outputs if t is not None]

  tensors = tf.recompute_grad(forward)(
      *[flat_inputs[i] for i in tensor_slots])
  structure = output_structure[0]
  flat_outputs = tf.nest.flatten(structure)
  it = iter(tensors)
  flat_outputs = [None if t is None else next(it) for t in flat_outputs]
  return tf.nest.pack_sequence_as(structure, flat_outputs)


class Block(tf_keras.layers.Layer):
  """A layer whose calls all run through `call`: in training each call
  draws the seed of its drop-path masks, and with `recompute=True` its
  forward runs again in the backward pass. Subclasses implement `call` as
  any Keras layer; blocks do not nest (`call` refuses it)."""

  def __init__(self, *args, recompute: bool = False, **kwargs):
    super().__init__(*args, **kwargs)
    configure(self, recompute)

  def __call__(self, inputs, *args, training=None, **kwargs):
    if args:
      raise TypeError(f'{self.name}: pass training and the other arguments '
                      'of a block by keyword')
    return call(self, inputs, training=training, **kwargs)


class BatchNormalization(tf_keras.layers.BatchNormalization):
  """tf_keras BatchNorm whose moving statistics are not assigned again while
  its block is recomputed in the backward pass (the forward pass already
  assigned them once). Variables and checkpoints are those of the base
  class."""

  def _assign_moving_average(self, variable, value, momentum, inputs_size):
    if is_recomputing():
      return variable
    return super()._assign_moving_average(variable, value, momentum,
                                          inputs_size)

  def _assign_new_value(self, variable, value):
    if is_recomputing():
      return variable
    return super()._assign_new_value(variable, value)

"""Subprocess body of the recomputation test: one training step of a tiny
CMT-DeepLab with every kind of block recomputed, and without.

Splits the CPU into 2 logical devices, then for each setting (`function`:
tf.function; `xla`: tf.function(jit_compile=True); `mirrored`:
MirroredStrategy over the 2 devices, one image each) builds two copies of
the same tiny CMT-DeepLab (clustering update, reference masks, coord-conv,
dual-path layers in the backbone, drop path 0.2 on every block at stride 16
and every transformer layer, SyncBatchNorm) with the same weights: `off`
recomputes nothing, `on` recomputes the conv, axial,
transformer and decoder blocks. Each takes one SGD step on the same batch
with the same drop-path seed and saves loss, gradients, and weights and
BatchNorm moving statistics after the step to OUTPUT_DIR/SETTING.npz; also
the loss under another drop-path seed (drop path must matter), the
gradients without recomputation on the images with 1-2 ulp of noise (their
float32 conditioning, tests/deeplab2_import/conditioning.py), and the
forward compute ops (convolutions, einsums, matmuls) of the traced step
that lie outside the model's forward pass and its plain gradients: the
recomputed block forwards, counted per name scope. The loss is the mean
square of every output (cheap to trace; it reaches every parameter).

Run to run the results are exact: op determinism, one intra-op thread,
seeded initialisers.

    python -m tests.model.recompute_check OUTPUT_DIR [SETTING ...]
"""

import collections
import os
import re
import sys

import numpy as np
import tensorflow as tf

from tests.deeplab2_import import conditioning

_CROP = 33
_SEEDS = ([3, 5], [4, 9])
_LEARNING_RATE = 0.1
_FORWARD_OPS = ('Conv2D', 'DepthwiseConv2dNative', 'Einsum', 'MatMul',
                'BatchMatMulV2')
# Name scopes of the ops built by the model's forward pass and by the
# gradients of ops that were not recomputed.
_PLAIN_SCOPES = ('cmt_deeplab', 'gradient_tape')


def _options(recompute_all: bool):
  # pylint: disable=g-import-not-at-top
  from tests.model import helpers
  flag = str(recompute_all).lower()
  return helpers.load(
      *helpers.TINY, *helpers.CLUSTERING, *helpers.LOCATION,
      'model_options.backbone.drop_path_schedule=CONSTANT',
      f'model_options.recompute.conv_blocks={flag}',
      f'model_options.recompute.axial_blocks={flag}',
      f'model_options.recompute.transformer_layers={flag}',
      f'model_options.recompute.decoder_stages={flag}',
      'trainer_options.solver_options.use_sync_batchnorm=true',
      # The auxiliary semantic head's ASPP dropout draws stateful random
      # masks outside every recomputable block: two models would differ by
      # it alone. It is never recomputed, so leave it out.
      'model_options.heads.auxiliary_semantic_head=false')


def _loss(outputs):
  """Mean square of every output (aux outputs included), a float32 scalar:
  reaches every parameter as the training loss does, and traces fast."""
  return tf.add_n([tf.reduce_mean(tf.square(tf.cast(x, tf.float32)))
                   for x in tf.nest.flatten(outputs)])


def _step_fn(model, optimizer):
  from cmt.model.layers import recompute  # pylint: disable=g-import-not-at-top

  def step(images, seed):
    with tf.GradientTape() as tape, recompute.drop_path_seed(seed):
      loss = _loss(model(images, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    gradients = [tf.convert_to_tensor(g) for g in gradients]
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss, gradients
  return step


def _make_run(setting, strategy, step):
  """run(images [2, H, W, 3], seed) -> (loss, gradients); under `mirrored`
  each replica takes one of the images."""
  if setting != 'mirrored':
    return tf.function(step, jit_compile=setting == 'xla')

  def replica_step(images, seed):
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    return step(tf.gather(images, [replica]), seed)

  @tf.function
  def run(images, seed):
    loss, gradients = strategy.run(replica_step, args=(images, seed))
    reduce = lambda x: strategy.reduce('SUM', x, axis=None)
    return reduce(loss), [reduce(g) for g in gradients]
  return run


def recomputed_forward_ops(graph) -> collections.Counter:
  """Forward compute ops of a traced step outside the model's forward pass
  and its plain gradients, per (op type, top-level name scope): the forwards
  that tf.recompute_grad runs again in the backward pass, in the scopes of
  their blocks (`stage5_block1`, `transformer_stage1_block1`, ...)."""
  counts = collections.Counter()
  for op in graph.get_operations():
    scope = re.sub(r'^replica_\d+/', '', op.name).split('/')[0]
    if op.type in _FORWARD_OPS and scope not in _PLAIN_SCOPES:
      counts[f'{op.type} {scope}'] += 1
  return counts


def _run(setting: str, strategy):
  # pylint: disable=g-import-not-at-top
  import tf_keras
  from cmt.model import builder as model_builder
  from tests.model import helpers
  from tests.model.loss import toy
  images = tf.random.stateless_uniform((2, _CROP, _CROP, 3), [0, 1],
                                       maxval=255.0)
  noisy_images = tf.constant(conditioning.with_ulp_noise(images.numpy()))
  results, initial = {}, None
  for name in ('off', 'on'):
    tf_keras.utils.set_random_seed(7)
    with strategy.scope():
      model = model_builder.build_and_initialise(
          _options(name == 'on'), toy.DATASET, crop_size=_CROP)
      if initial is None:
        # Random gammas: zero-initialised residual branches would hide the
        # drop-path masks.
        helpers.randomise_batch_norms(model)
        initial = model.get_weights()
      model.set_weights(initial)
      optimizer = tf_keras.optimizers.SGD(0.0)
      optimizer.build(model.trainable_variables)
    run = _make_run(setting, strategy, _step_fn(model, optimizer))
    # Drop path must matter: with learning rate 0, another seed.
    results[f'{name}_other_seed_loss'] = float(
        run(images, tf.constant(_SEEDS[1]))[0])
    recomputed = recomputed_forward_ops(run.get_concrete_function(
        images, tf.constant(_SEEDS[1])).graph)
    results[f'{name}_recomputed_scopes'] = np.array(
        sorted(recomputed), dtype=str).reshape([-1])
    results[f'{name}_recomputed_counts'] = np.array(
        [recomputed[k] for k in sorted(recomputed)], np.int64)
    model.set_weights(initial)  # Undo the moving-statistics update.
    optimizer.learning_rate.assign(_LEARNING_RATE)
    loss, gradients = run(images, tf.constant(_SEEDS[0]))
    results[f'{name}_loss'] = float(loss)
    for i, g in enumerate(gradients):
      results[f'{name}_grad{i}'] = g.numpy()
    for i, w in enumerate(model.get_weights()):
      results[f'{name}_weight{i}'] = w
    results[f'{name}_weight_names'] = np.array(
        [w.name for w in model.weights])
    results[f'{name}_grad_names'] = np.array(
        [w.name for w in model.trainable_variables])
    if name == 'off':
      # The gradients' float32 conditioning: the same step on the images
      # with 1-2 ulp of noise.
      model.set_weights(initial)
      _, gradients = run(noisy_images, tf.constant(_SEEDS[0]))
      for i, g in enumerate(gradients):
        results[f'noisy_grad{i}'] = g.numpy()
  for i, w in enumerate(initial):
    results[f'initial_weight{i}'] = w
  return results


def main(output_dir: str, settings):
  tf.config.experimental.enable_op_determinism()
  tf.config.threading.set_intra_op_parallelism_threads(1)
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  devices = [d.name for d in tf.config.list_logical_devices('CPU')]
  for setting in settings:
    if setting == 'mirrored':
      strategy = tf.distribute.MirroredStrategy(devices)
    else:
      strategy = tf.distribute.OneDeviceStrategy(devices[0])
    results = _run(setting, strategy)
    np.savez(os.path.join(output_dir, f'{setting}.npz'), **results)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2:] or ['function', 'xla', 'mirrored'])

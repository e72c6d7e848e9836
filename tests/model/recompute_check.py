"""Subprocess body of the recomputation test: one training step of a tiny
CMT-DeepLab with every kind of block recomputed, and without.

Splits the CPU into 2 logical devices, then for each setting (`function`:
tf.function; `xla`: tf.function(jit_compile=True); `mirrored`:
MirroredStrategy over the 2 devices, one image each) builds two copies of
the same tiny CMT-DeepLab (clustering update, reference masks, coord-conv,
dual-path layers in the backbone, drop path 0.2 on every block at stride 16 and every transformer
layer, SyncBatchNorm) with the same
weights: `off` recomputes nothing, `on` recomputes the conv, axial,
transformer and decoder blocks. Each takes one SGD step on the same batch
with the same drop-path seed and saves loss, gradients, and weights and
BatchNorm moving statistics after the step to OUTPUT_DIR/SETTING.npz; also
the loss under another drop-path seed (drop path must matter). The loss is
the mean square of every output (cheap to trace; it reaches every
parameter).

    python -m tests.model.recompute_check OUTPUT_DIR [SETTING ...]
"""

import os
import sys

import numpy as np
import tensorflow as tf

_CROP = 33
_SEEDS = ([3, 5], [4, 9])


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


def _make_run(setting, strategy, step, images):
  if setting != 'mirrored':
    return tf.function(lambda seed: step(images, seed),
                       jit_compile=setting == 'xla')
  inputs = strategy.experimental_distribute_values_from_function(
      lambda context: images[context.replica_id_in_sync_group][None])

  @tf.function
  def run(seed):
    loss, gradients = strategy.run(step, args=(inputs, seed))
    reduce = lambda x: strategy.reduce('SUM', x, axis=None)
    return reduce(loss), [reduce(g) for g in gradients]
  return run


def _run(setting: str, strategy):
  # pylint: disable=g-import-not-at-top
  import tf_keras
  from cmt.model import builder as model_builder
  from tests.model import helpers
  from tests.model.loss import toy
  images = tf.random.stateless_uniform((2, _CROP, _CROP, 3), [0, 1],
                                       maxval=255.0)
  results, initial = {}, None
  for name in ('off', 'on'):
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
    run = _make_run(setting, strategy, _step_fn(model, optimizer), images)
    # Drop path must matter: with learning rate 0, another seed.
    results[f'{name}_other_seed_loss'] = float(run(tf.constant(_SEEDS[1]))[0])
    model.set_weights(initial)  # Undo the moving-statistics update.
    optimizer.learning_rate.assign(0.1)
    loss, gradients = run(tf.constant(_SEEDS[0]))
    results[f'{name}_loss'] = float(loss)
    for i, g in enumerate(gradients):
      results[f'{name}_grad{i}'] = g.numpy()
    for i, w in enumerate(model.get_weights()):
      results[f'{name}_weight{i}'] = w
    results[f'{name}_weight_names'] = np.array(
        [w.name for w in model.weights])
  for i, w in enumerate(initial):
    results[f'initial_weight{i}'] = w
  return results


def main(output_dir: str, settings):
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

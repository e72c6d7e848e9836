"""A tiny untrained CMT-DeepLab checkpoint and its exported SavedModel,
built once per test session (model builds are the slow part)."""

import pathlib

import pytest

TINY_CONFIG = pathlib.Path(__file__).resolve().parent / 'tiny_cmt.textproto'


@pytest.fixture(scope='session')
def tiny_options():
  from cmt import config as config_lib
  return config_lib.load_config(str(TINY_CONFIG))


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory, tiny_options):
  """A `cmt-train`-style checkpoint ({model, optimizer}) of the tiny model."""
  import tensorflow as tf
  import tf_keras
  from cmt.data import dataset_info
  from cmt.model import builder
  info = dataset_info.get_dataset_info(tiny_options.eval_dataset_options)
  # Unseeded initialisers differ per process, and some draws (seed 0, say)
  # give a one-segment map that the tests rightly reject as trivial: build the
  # same model in every process, from a seed whose map has several segments.
  tf_keras.utils.set_random_seed(2)
  model = builder.build_model(tiny_options, info)
  model(tf.zeros([1, 65, 65, 3]), training=False)
  # Move the class head away from its void prior so segments appear.
  for variable in model.trainable_variables:
    variable.assign(variable + tf.random.stateless_normal(
        variable.shape, [1, len(variable.name)], stddev=0.05))
  folder = tmp_path_factory.mktemp('tiny_run')
  checkpoint = tf.train.Checkpoint(model=model,
                                   optimizer=tf_keras.optimizers.Adam())
  manager = tf.train.CheckpointManager(checkpoint, str(folder), 1)
  manager.save()
  return str(folder)


@pytest.fixture(scope='session')
def tiny_inference(tiny_options, tiny_checkpoint):
  from cmt import export
  return export.build_inference(tiny_options, tiny_checkpoint)


@pytest.fixture(scope='session')
def tiny_saved_model(tmp_path_factory, tiny_inference):
  from cmt import export
  path = tmp_path_factory.mktemp('export') / 'saved_model'
  return export.export(tiny_inference, str(path))

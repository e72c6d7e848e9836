"""Shared fixtures: paths to the repository and to ../shared/data; a tiny
untrained CMT-DeepLab checkpoint and its exported SavedModel, built once per
test session (model builds are the slow part) for the export, predict and
figure tests."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / 'shared'
SHARED_DATA = SHARED / 'data'
DEEPLAB2_FIXTURES = SHARED / 'deeplab2'
COCO_SAMPLE = SHARED_DATA / 'coco_panoptic_sample'
TINY_CONFIG = REPO_ROOT / 'tests' / 'export' / 'tiny_cmt.textproto'


def require_shared(path: pathlib.Path, what: str) -> pathlib.Path:
  """`path` under ../shared; where it is absent the test skips (a user's
  fresh clone), or fails in CI, which always has ../shared."""
  if not path.exists():
    if os.environ.get('CI'):
      pytest.fail(f'{path} is missing; CI must have ../shared beside the '
                  'clone')
    pytest.skip(f'{path} not found: these tests need {what} beside the '
                f'clone (../shared/{path.relative_to(SHARED)})')
  return path


@pytest.fixture
def coco_sample() -> pathlib.Path:
  """The real COCO panoptic samples; skips where ../shared is absent."""
  return require_shared(COCO_SAMPLE, 'the shared COCO samples')


@pytest.fixture
def repo_root() -> pathlib.Path:
  return REPO_ROOT


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

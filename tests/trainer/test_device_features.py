"""The device receives exactly the features a train step reads.

A real pipeline batch goes through `numeric_features` (what is sent) and,
wrapped in a mapping that records every key looked up, through the trainer's
forward and backward pass with every loss term on (what is read).
"""

import collections.abc

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.data import build_data
from cmt.data import dataset_info
from cmt.data import pipeline
from cmt.data import synthetic
from cmt.model.loss import builder as loss_builder
from cmt.protos import dataset_pb2
from cmt.protos import trainer_pb2
from cmt.trainer import trainer as trainer_lib
from tests.model.loss import toy

_CROP = 17
_NUM_MASKS = 6


class _ReadRecorder(collections.abc.Mapping):
  """A read-only view of a batch that records the keys looked up."""

  def __init__(self, batch):
    self._batch = batch
    self.read = set()

  def __getitem__(self, key):
    self.read.add(key)
    return self._batch[key]

  def __contains__(self, key):
    return key in self._batch

  def __iter__(self):
    return iter(self._batch)

  def __len__(self):
    return len(self._batch)


class _FixedOutputs(tf_keras.Model):
  """Model outputs of the shapes the loss expects (a final layer and one
  auxiliary one) times a trainable scale; reads only the image."""

  def __init__(self, outputs):
    super().__init__()
    self._outputs = outputs
    self.scale = tf.Variable(1.0)

  def call(self, images, training=False):
    del training
    scale = self.scale + 0.0 * tf.reduce_mean(images)
    final = {key: value * scale for key, value in self._outputs.items()}
    return {**final, common.AUX_OUTPUTS: [dict(final)]}


@pytest.fixture(scope='module')
def pipeline_batch(tmp_path_factory):
  """One training batch of the real pipeline (two synthetic images)."""
  root = tmp_path_factory.mktemp('device_features')
  paths = synthetic.write_dataset(str(root / 'raw'), num_train=2, num_val=0,
                                  image_size=(_CROP, _CROP), seed=1)
  info = dataset_info.from_categories_json(paths['categories_json'])
  build_data.build(str(root / 'raw' / 'images' / 'train'),
                   paths['train_json'], str(root / 'raw' / 'panoptic' /
                                             'train'),
                   str(root / 'records'), info, split_name='train',
                   num_shards=1, show_progress=False)
  options = dataset_pb2.DatasetOptions(
      categories_json=paths['categories_json'],
      file_pattern=[str(root / 'records' / 'train-*')], batch_size=2,
      crop_size=[_CROP, _CROP], max_num_masks=_NUM_MASKS, seed=1)
  dataset = pipeline.build_dataset(options, info, is_training=True)
  return info, next(iter(dataset))


def _keys_read_by_a_train_step(info, batch) -> set:
  """Every batch key the trainer's forward/backward pass looks up, with
  every loss term on and deep supervision."""
  options = toy.options(
      pq_style=1.0, mask_id=1.0, instance=1.0, semantic=1.0,
      mask_approximation=1.0, sample_count=16,
      discrimination=trainer_pb2.InstanceDiscriminationOptions
      .PIXEL_CONTRASTIVE)
  _, outputs = toy.random_case(np.random.default_rng(0), batch=2,
                               crop=_CROP, num_masks=_NUM_MASKS, num_slots=8)
  outputs[common.SEMANTIC_LOGITS] = np.zeros(
      outputs[common.SEMANTIC_LOGITS].shape[:-1] + (info.num_classes + 1,),
      np.float32)
  outputs[common.CLASS_LOGITS] = np.zeros(
      outputs[common.CLASS_LOGITS].shape[:-1] + (info.num_classes + 1,),
      np.float32)
  model = _FixedOutputs(outputs)
  trainer = trainer_lib.CMTTrainer(
      options, tf.distribute.get_strategy(), model,
      loss_builder.build_loss(options, info), tf_keras.optimizers.SGD(),
      tf.data.Dataset.from_tensors(batch), jit_compile=False)
  recorder = _ReadRecorder(batch)
  losses, gradients = trainer.compute_gradients(recorder)
  for name in loss_builder.LOSS_NAMES:  # every term ran
    assert float(losses[name]) > 0, name
  assert gradients[0] is not None
  return recorder.read


def test_device_receives_exactly_what_the_step_reads(pipeline_batch):
  info, batch = pipeline_batch
  sent = trainer_lib.numeric_features(batch)
  read = _keys_read_by_a_train_step(info, sent)
  assert set(sent) == read
  # The pipeline's per-pixel targets that no step reads stay on the host.
  per_pixel = {key for key, value in batch.items()
               if value.shape.rank == 3 and key != common.IMAGE}
  assert per_pixel - read == {common.GT_PANOPTIC, common.GT_CROWD,
                              common.GT_PIXEL_WEIGHT}
  assert not per_pixel - read & set(sent)

"""Bad records stop a run with one line naming them:
a truncated shard names the shard; records whose classes the configured
categories do not have name the image and the class counts."""

import json

import pytest
import tensorflow as tf

from cmt.data import dataset_info
from cmt.data import errors
from cmt.data import pipeline
from cmt.data import record_errors
from cmt.protos import dataset_pb2
from cmt.trainer import train_lib
from tests.trainer import standins


def _first_train_shard(records: dict) -> str:
  return sorted(tf.io.gfile.glob(records['TRAIN_SET']))[0]


def _truncated_copy(tmp_path, records) -> str:
  shard = _first_train_shard(records)
  copy = tmp_path / 'train-00000-of-00001.tfrecord'
  data = open(shard, 'rb').read()
  # Cut inside the last record's data (records are ~20 kB): TensorFlow
  # raises DataLossError there, without the file's name.
  copy.write_bytes(data[:len(data) - 1000])
  return str(copy)


def test_find_truncated_shards_names_only_the_broken_one(tmp_path,
                                                         synthetic_records):
  broken = _truncated_copy(tmp_path, synthetic_records)
  intact = _first_train_shard(synthetic_records)
  found = record_errors.find_truncated_shards([intact, broken])
  assert len(found) == 1
  assert found[0].startswith(f'{broken}: record ')


def _real_data_run(tmp_path, file_pattern, categories_json, num_classes):
  """The real input pipeline feeding the stand-in model for 2 steps."""
  options = standins.options(steps=2, batch=2, steps_per_loop=1)
  for dataset in (options.train_dataset_options,
                  options.eval_dataset_options):
    dataset.ClearField('dataset')
    dataset.categories_json = categories_json
    dataset.ClearField('file_pattern')
    dataset.file_pattern.append(file_pattern)
    dataset.min_resize_value = dataset.max_resize_value = standins.CROP
  builders = standins.builders(num_classes=num_classes)
  builders.get_dataset_info = dataset_info.get_dataset_info
  builders.build_dataset = pipeline.build_dataset
  return train_lib.run_experiment('train', options, str(tmp_path / 'run'),
                                  tf.distribute.get_strategy(), builders)


def test_a_truncated_shard_is_named_in_one_line(tmp_path, synthetic_records):
  broken = _truncated_copy(tmp_path, synthetic_records)
  categories = synthetic_records['CATEGORIES_JSON']
  num_classes = dataset_info.from_categories_json(categories).num_classes
  with pytest.raises(errors.DataError) as error:
    _real_data_run(tmp_path, broken, categories, num_classes)
  message = str(error.value)
  assert len(message.splitlines()) == 1
  assert f'truncated TFRecord shard(s): {broken}: record ' in message


def test_records_with_classes_the_config_lacks_are_refused(tmp_path,
                                                           synthetic_records):
  # The synthetic records read with a categories file of 2 classes: as COCO
  # records read with the synthetic categories.json.
  categories = json.loads(open(synthetic_records['CATEGORIES_JSON']).read())
  fewer = tmp_path / 'two_categories.json'
  fewer.write_text(json.dumps(categories[:2]))
  with pytest.raises(errors.DataError) as error:
    _real_data_run(tmp_path, synthetic_records['TRAIN_SET'], str(fewer), 2)
  message = str(error.value)
  assert len(message.splitlines()) == 1
  assert 'the TFRecords hold classes the configured categories do not have' \
      in message
  assert 'but the config gives 2 classes' in message
  assert str(fewer) in message


def test_other_errors_pass_through(synthetic_records):
  datasets = {'train_dataset_options': dataset_pb2.DatasetOptions(
      file_pattern=[synthetic_records['TRAIN_SET']])}
  shapes = tf.errors.InvalidArgumentError(None, None, 'shapes differ')
  assert record_errors.explain(shapes, datasets) is None
  checkpoint = tf.errors.DataLossError(
      None, None, 'Checksum does not match: stored 1 vs. calculated 2')
  assert record_errors.explain(checkpoint, datasets) is None

"""cmt-build-data: exact round trip on real COCO, validation, atomic shards."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cmt.data import build_data
from cmt.data import dataset_info
from cmt.data import errors
from cmt.data import panoptic_label
from cmt.data import tfrecord_format
from cmt.tools import build_data as build_data_tool


def _read_records(output_dir):
  """{file name: tf.train.Example} of every shard, parsed with protobuf."""
  examples = {}
  for shard in sorted(os.listdir(output_dir)):
    for record in tf.data.TFRecordDataset(os.path.join(output_dir, shard)):
      example = tf.train.Example.FromString(record.numpy())
      name = example.features.feature['image/filename'].bytes_list.value[0]
      examples[name.decode()] = example
  return examples


def _feature(example, key):
  feature = example.features.feature[key]
  return (feature.bytes_list.value or feature.int64_list.value)[0]


def test_coco_round_trip_gives_back_every_segment(coco_sample, tmp_path):
  output_dir = tmp_path / 'records'
  code = build_data_tool.main([
      f'--image_dir={coco_sample / "images"}',
      f'--panoptic_json={coco_sample / "panoptic_examples.json"}',
      f'--panoptic_dir={coco_sample / "panoptic"}',
      f'--output_dir={output_dir}', '--num_shards=2', '--num_workers=2'])
  assert code == 0
  assert sorted(os.listdir(output_dir)) == [
      'examples-00000-of-00002.tfrecord', 'examples-00001-of-00002.tfrecord']

  # Contiguous ids from the official categories file, read independently.
  with open(coco_sample / 'panoptic_coco_categories.json') as f:
    categories = sorted(json.load(f), key=lambda c: c['id'])
  class_of = {c['id']: i + 1 for i, c in enumerate(categories)}
  is_thing = {i + 1: bool(c['isthing']) for i, c in enumerate(categories)}
  with open(coco_sample / 'panoptic_examples.json') as f:
    annotations = json.load(f)['annotations']

  examples = _read_records(output_dir)
  assert sorted(examples) == ['000000142238', '000000439180']
  num_crowd = 0
  for annotation in annotations:
    name = os.path.splitext(annotation['file_name'])[0]
    example = examples[name]
    rgb = np.asarray(Image.open(coco_sample / 'panoptic' /
                                annotation['file_name']).convert('RGB'),
                     np.int64)
    segment_map = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    height, width = segment_map.shape
    assert _feature(example, 'image/height') == height
    assert _feature(example, 'image/width') == width
    assert _feature(example, 'image/format') == b'jpeg'
    assert _feature(example, 'image/segmentation/class/format') == b'raw'
    with open(coco_sample / 'images' / (name + '.jpg'), 'rb') as f:
      assert _feature(example, 'image/encoded') == f.read()
    label = np.frombuffer(
        _feature(example, 'image/segmentation/class/encoded'),
        '<i4').reshape(height, width)

    np.testing.assert_array_equal(label[segment_map == 0], 0)
    thing_values = set()
    for segment in annotation['segments_info']:
      pixels = segment_map == segment['id']
      values = np.unique(label[pixels])
      assert values.size == 1, segment
      value = int(values[0])
      semantic, instance = divmod(value, 256)
      assert semantic == class_of[segment['category_id']]
      if segment['iscrowd']:
        num_crowd += 1
        assert is_thing[semantic] and instance == 0
      elif is_thing[semantic]:
        assert instance > 0 and value not in thing_values
        thing_values.add(value)
        # The label value marks exactly this segment's pixels.
        np.testing.assert_array_equal(label == value, pixels)
      else:
        assert instance == 0
        np.testing.assert_array_equal(label == value, pixels)
  assert num_crowd == 3  # one crowd in the first image, two in the second

  # The pipeline's own decoder reads the same label and name.
  decoded = tfrecord_format.decode_example(
      examples['000000142238'].SerializeToString())
  assert decoded['name'].numpy() == b'000000142238'
  assert decoded['image'].shape == (427, 640, 3)
  np.testing.assert_array_equal(decoded['size'].numpy(), [427, 640])


# ---- validation: each broken input names its file and leaves nothing -------


def _copy_raw(synthetic_dataset, tmp_path):
  raw = tmp_path / 'raw'
  shutil.copytree(synthetic_dataset['raw'], raw)
  return raw


def _build(raw, output_dir, info, num_workers=1):
  return build_data.build(str(raw / 'images' / 'train'),
                          str(raw / 'panoptic_train.json'),
                          str(raw / 'panoptic' / 'train'), str(output_dir),
                          info, split_name='train', num_shards=3,
                          num_workers=num_workers, show_progress=False)


def _edit_json(raw, edit):
  path = raw / 'panoptic_train.json'
  data = json.loads(path.read_text())
  edit(data)
  path.write_text(json.dumps(data))


# The last image in name order, so earlier shards are already written when
# it fails.
_LAST = 'train_000005'


def _remove_image(raw):
  os.remove(raw / 'images' / 'train' / f'{_LAST}.jpg')
  return f'{_LAST}.jpg', 'missing'


def _corrupt_image(raw):
  (raw / 'images' / 'train' / f'{_LAST}.jpg').write_bytes(b'not a jpeg')
  return f'{_LAST}.jpg', 'unreadable'


def _drop_json_segment(raw):
  def edit(data):
    data['annotations'][-1]['segments_info'].pop()
  _edit_json(raw, edit)
  return f'{_LAST}.png', 'not in the segments_info'


def _add_json_segment(raw):
  def edit(data):
    data['annotations'][-1]['segments_info'].append(
        {'id': 123456, 'category_id': 1, 'iscrowd': 0})
  _edit_json(raw, edit)
  return 'panoptic_train.json', 'do not occur in the PNG'


def _unknown_category(raw):
  def edit(data):
    data['annotations'][-1]['segments_info'][0]['category_id'] = 99
  _edit_json(raw, edit)
  return 'panoptic_train.json', 'category_id 99'


def _resize_png(raw):
  path = raw / 'panoptic' / 'train' / f'{_LAST}.png'
  Image.open(path).crop((0, 0, 60, 65)).save(path)
  return f'{_LAST}.png', '60x65'


@pytest.mark.parametrize('breaker', [
    _remove_image, _corrupt_image, _drop_json_segment, _add_json_segment,
    _unknown_category, _resize_png])
def test_broken_input_is_named_and_leaves_nothing(synthetic_dataset, tmp_path,
                                                  breaker):
  raw = _copy_raw(synthetic_dataset, tmp_path)
  _build(raw, tmp_path / 'ok', synthetic_dataset['info'])  # intact: converts
  file_name, reason = breaker(raw)
  output_dir = tmp_path / 'records'
  with pytest.raises(errors.DataError) as error:
    _build(raw, output_dir, synthetic_dataset['info'])
  assert file_name in str(error.value) and reason in str(error.value)
  assert not output_dir.exists() or os.listdir(output_dir) == []


def test_error_from_parallel_workers_leaves_nothing(synthetic_dataset,
                                                    tmp_path, capsys):
  raw = _copy_raw(synthetic_dataset, tmp_path)
  _corrupt_image(raw)
  output_dir = tmp_path / 'records'
  code = build_data_tool.main([
      f'--image_dir={raw / "images" / "train"}',
      f'--panoptic_json={raw / "panoptic_train.json"}',
      f'--panoptic_dir={raw / "panoptic" / "train"}',
      f'--categories_json={raw / "categories.json"}',
      f'--output_dir={output_dir}', '--num_shards=3', '--num_workers=2'])
  assert code == 1
  assert f'{_LAST}.jpg' in capsys.readouterr().err
  assert os.listdir(output_dir) == []


def test_interrupted_run_leaves_no_shard(synthetic_dataset, tmp_path,
                                         monkeypatch):
  raw = _copy_raw(synthetic_dataset, tmp_path)
  real_convert = panoptic_label.convert_task
  calls = []

  def convert_then_interrupt(task, info):
    calls.append(task.name)
    if len(calls) == 5:
      raise KeyboardInterrupt
    return real_convert(task, info)

  monkeypatch.setattr(panoptic_label, 'convert_task', convert_then_interrupt)
  output_dir = tmp_path / 'records'
  with pytest.raises(KeyboardInterrupt):
    _build(raw, output_dir, synthetic_dataset['info'])
  assert os.listdir(output_dir) == []


def test_crowd_stuff_is_rejected():
  info = dataset_info.COCO_PANOPTIC
  segment_map = np.array([[5, 5], [0, 7]])
  with pytest.raises(errors.DataError, match='crowd of stuff'):
    panoptic_label.panoptic_label_from_coco(
        segment_map, [{'id': 5, 'category_id': 184, 'iscrowd': 1},
                      {'id': 7, 'category_id': 1, 'iscrowd': 0}],
        info, 'x.png', 'x.json')

"""The tf.data pipeline: static shapes, determinism, geometry, sharding."""

import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from cmt import common
from cmt.data import pipeline
from cmt.data import tfrecord_format
from cmt.protos import dataset_pb2

_ALL_KEYS = {
    common.IMAGE, common.GT_SEMANTIC, common.GT_PANOPTIC, common.GT_MASK_ID,
    common.GT_MASK_CLASS, common.GT_MASK_VALID, common.GT_MASK_IS_THING,
    common.GT_PIXEL_WEIGHT, common.GT_CROWD, common.IMAGE_SIZE,
    common.ORIGINAL_IMAGE_SIZE, common.IMAGE_NAME}


def _options(data, split='train', **fields):
  defaults = {'batch_size': 2, 'crop_size': [33, 33], 'max_num_masks': 6}
  return dataset_pb2.DatasetOptions(
      categories_json=data['categories_json'],
      file_pattern=[str(data['records'] / f'{split}-*')],
      **{**defaults, **fields})


def _decoded(data, split):
  """{name: decoded example} of a split, straight from the records."""
  files = sorted(str(p) for p in data['records'].glob(f'{split}-*'))
  out = {}
  for record in tf.data.TFRecordDataset(files):
    decoded = tfrecord_format.decode_example(record)
    out[decoded['name'].numpy().decode()] = {k: v.numpy() for k, v in
                                             decoded.items()}
  return out


def _take(dataset, n):
  return [{k: v.numpy() for k, v in batch.items()}
          for batch in dataset.take(n)]


def test_training_shapes_are_static(synthetic_dataset):
  options = _options(synthetic_dataset, seed=1)
  options.augmentations.SetInParent()
  dataset = pipeline.build_dataset(options, synthetic_dataset['info'], True)
  spec = dataset.element_spec
  assert set(spec) == _ALL_KEYS
  for key, tensor_spec in spec.items():
    assert tensor_spec.shape.is_fully_defined(), key
  assert spec[common.IMAGE].shape == (2, 33, 33, 3)
  assert spec[common.GT_MASK_ID].shape == (2, 33, 33)
  assert spec[common.GT_MASK_CLASS].shape == (2, 6)
  batch = _take(dataset, 1)[0]
  assert batch[common.IMAGE].dtype == np.float32
  assert 0 <= batch[common.IMAGE].min() and batch[common.IMAGE].max() <= 255


def test_seed_makes_training_deterministic(synthetic_dataset):
  def batches(seed):
    options = _options(synthetic_dataset, seed=seed, shuffle_buffer_size=4)
    options.augmentations.min_scale_factor = 0.5
    options.augmentations.max_scale_factor = 2.0
    return _take(pipeline.build_dataset(options, synthetic_dataset['info'],
                                        True), 3)

  first, again, other = batches(7), batches(7), batches(8)
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  assert any(not np.array_equal(a[common.IMAGE], b[common.IMAGE])
             for a, b in zip(first, other))


def test_crop_keeps_image_and_label_aligned(synthetic_dataset):
  """Scale 1, crop < image: the crop is one window of both image and label."""
  options = _options(synthetic_dataset, seed=3)
  options.augmentations.min_scale_factor = 1.0
  options.augmentations.max_scale_factor = 1.0
  options.augmentations.flip_probability = 0.0
  decoded = _decoded(synthetic_dataset, 'train')
  for batch in _take(pipeline.build_dataset(
      options, synthetic_dataset['info'], True), 2):
    for i, name in enumerate(batch[common.IMAGE_NAME]):
      source = decoded[name.decode()]
      label, image = batch[common.GT_PANOPTIC][i], batch[common.IMAGE][i]
      windows = [(y, x) for y in range(65 - 33 + 1) for x in range(65 - 33 + 1)
                 if np.array_equal(source['label'][y:y + 33, x:x + 33],
                                   label)]
      assert windows, name
      assert any(np.allclose(source['image'][y:y + 33, x:x + 33], image,
                             atol=1e-3) for y, x in windows)
      np.testing.assert_array_equal(batch[common.IMAGE_SIZE][i], [65, 65])
      np.testing.assert_array_equal(batch[common.ORIGINAL_IMAGE_SIZE][i],
                                    [65, 65])


def test_flip_probability_one_flips(synthetic_dataset):
  options = _options(synthetic_dataset, seed=3, crop_size=[65, 65])
  options.augmentations.min_scale_factor = 1.0
  options.augmentations.max_scale_factor = 1.0
  options.augmentations.flip_probability = 1.0
  decoded = _decoded(synthetic_dataset, 'train')
  batch = _take(pipeline.build_dataset(options, synthetic_dataset['info'],
                                       True), 1)[0]
  for i, name in enumerate(batch[common.IMAGE_NAME]):
    source = decoded[name.decode()]
    np.testing.assert_array_equal(batch[common.GT_PANOPTIC][i],
                                  source['label'][:, ::-1])
    np.testing.assert_allclose(batch[common.IMAGE][i],
                               source['image'][:, ::-1], atol=1e-3)


def test_evaluation_resizes_and_pads_without_augmentation(synthetic_dataset):
  # Crop 81 > image 65: no resize, padded bottom/right with mean and void.
  options = _options(synthetic_dataset, 'val', crop_size=[81, 81],
                     batch_size=4)
  options.augmentations.flip_probability = 1.0  # ignored for evaluation
  dataset = pipeline.build_dataset(options, synthetic_dataset['info'], False)
  batches = _take(dataset, 5)
  assert len(batches) == 1 and len(batches[0][common.IMAGE_NAME]) == 2
  batch, decoded = batches[0], _decoded(synthetic_dataset, 'val')
  assert [n.decode() for n in batch[common.IMAGE_NAME]] == sorted(decoded)
  for i, name in enumerate(batch[common.IMAGE_NAME]):
    source = decoded[name.decode()]
    np.testing.assert_allclose(batch[common.IMAGE][i, :65, :65],
                               source['image'], atol=1e-3)
    assert (batch[common.IMAGE][i, 65:] == 127.5).all()
    np.testing.assert_array_equal(batch[common.GT_PANOPTIC][i, :65, :65],
                                  source['label'])
    assert (batch[common.GT_PANOPTIC][i, :, 65:] == 0).all()
    assert (batch[common.GT_PIXEL_WEIGHT][i, 65:] == 0).all()
    np.testing.assert_array_equal(batch[common.IMAGE_SIZE][i], [65, 65])

  # Crop 33 < image: resized to fit (65 -> 33, aligned corners keep corners).
  options = _options(synthetic_dataset, 'val')
  batch = _take(pipeline.build_dataset(options, synthetic_dataset['info'],
                                       False), 1)[0]
  np.testing.assert_array_equal(batch[common.IMAGE_SIZE], [[33, 33]] * 2)
  for i, name in enumerate(batch[common.IMAGE_NAME]):
    source = decoded[name.decode()]
    np.testing.assert_array_equal(batch[common.GT_PANOPTIC][i],
                                  source['label'][::2, ::2])


def test_resize_range():
  size = tf.constant([100, 200])
  # min 50: shorter side -> 50; max 80: longer side capped at 80.
  np.testing.assert_array_equal(
      pipeline.preprocessing.resized_size(size, (50, 50), None), [50, 100])
  np.testing.assert_array_equal(
      pipeline.preprocessing.resized_size(size, (50, 50), (80, 80)), [40, 80])
  np.testing.assert_array_equal(
      pipeline.preprocessing.resized_size(size, None, (400, 400)), [100, 200])


@pytest.mark.parametrize('split, num_pipelines, num_images', [
    ('train', 2, 6),  # 3 files: sharded by file
    ('val', 3, 2),    # 2 files < 3 pipelines: sharded by record
])
def test_sharding_and_per_replica_batch(synthetic_dataset, split,
                                        num_pipelines, num_images):
  options = _options(synthetic_dataset, split, batch_size=2 * num_pipelines)
  names = []
  for pipeline_id in range(num_pipelines):
    context = tf.distribute.InputContext(
        num_input_pipelines=num_pipelines, input_pipeline_id=pipeline_id,
        num_replicas_in_sync=num_pipelines)
    dataset = pipeline.build_dataset(options, synthetic_dataset['info'],
                                     False, context)
    batches = _take(dataset, 10)
    assert all(len(b[common.IMAGE_NAME]) <= 2 for b in batches)
    names.append([n for b in batches for n in b[common.IMAGE_NAME]])
  everything = [n for shard in names for n in shard]
  assert len(everything) == len(set(everything)) == num_images
  first = tf.distribute.InputContext(
      num_input_pipelines=num_pipelines, input_pipeline_id=0,
      num_replicas_in_sync=num_pipelines)
  train = pipeline.build_dataset(options, synthetic_dataset['info'], True,
                                 first)
  assert train.element_spec[common.IMAGE].shape[0] == 2


@pytest.mark.parametrize('field, value, message', [
    ('crop_size', [33], 'crop_size'),
    ('batch_size', 0, 'batch_size'),
    ('max_num_masks', 0, 'max_num_masks'),
    ('max_resize_value', 65, 'max_resize_value'),
    ('file_pattern', ['/nonexistent/*.tfrecord'], 'file_pattern'),
])
def test_bad_options_name_the_field(synthetic_dataset, field, value,
                                    message):
  options = _options(synthetic_dataset)
  options.ClearField(field)
  if isinstance(value, list):
    getattr(options, field).extend(value)
  else:
    setattr(options, field, value)
  with pytest.raises(ValueError, match=f'DatasetOptions.{message}'):
    pipeline.build_dataset(options, synthetic_dataset['info'], False)


def test_bad_augmentation_names_the_field(synthetic_dataset):
  options = _options(synthetic_dataset)
  options.augmentations.flip_probability = 1.5
  with pytest.raises(ValueError, match='augmentations.flip_probability'):
    pipeline.build_dataset(options, synthetic_dataset['info'], True)


def _write_pod_records(folder, num_files, per_file, size=21):
  """`num_files` TFRecord files of `per_file` tiny examples; their names."""
  rng = np.random.default_rng(0)
  label = np.zeros((size, size), np.int32)
  names = []
  for f in range(num_files):
    path = folder / f'pod-{f:05d}-of-{num_files:05d}.tfrecord'
    with tf.io.TFRecordWriter(str(path)) as writer:
      for r in range(per_file):
        encoded = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(
            encoded, 'PNG')
        names.append(f'f{f}r{r}')
        writer.write(tfrecord_format.encode_example(
            encoded.getvalue(), 'png', names[-1], label))
  return names


def _pod_options(data, folder, **fields):
  defaults = {'batch_size': 8, 'crop_size': [17, 17], 'max_num_masks': 2,
              'seed': 5, 'shuffle_buffer_size': 64}
  return dataset_pb2.DatasetOptions(
      categories_json=data['categories_json'],
      file_pattern=[str(folder / 'pod-*')], **{**defaults, **fields})


def _names(dataset, count):
  return [n.decode() for batch in dataset.take(count)
          for n in batch[common.IMAGE_NAME].numpy()]


@pytest.mark.parametrize('num_files, per_file, parts', [(10, 4, 4),
                                                        (3, 8, 8)])
def test_8_hosts_read_disjoint_equal_shares_record_by_record(
    synthetic_dataset, tmp_path, monkeypatch, num_files, per_file, parts):
  """Each of 8 simulated hosts (input pipelines) emits, epoch after epoch,
  its own records once each: together every record once, no host more than
  another (10 files: each split in 4; 3 files: in 8, said once)."""
  names = _write_pod_records(tmp_path, num_files, per_file)
  options = _pod_options(synthetic_dataset, tmp_path)
  logged = []
  monkeypatch.setattr(pipeline, '_log_split_files',
                      lambda *args: logged.append(args))
  epochs, shares, reshuffled = 3, [], []
  for host in range(8):
    context = tf.distribute.InputContext(
        num_input_pipelines=8, input_pipeline_id=host, num_replicas_in_sync=8)
    dataset = pipeline.build_dataset(options, synthetic_dataset['info'], True,
                                     context)
    assert dataset.element_spec[common.IMAGE].shape[0] == 1
    stream = _names(dataset, epochs * len(names) // 8)
    share = set(stream)
    assert len(stream) == epochs * len(share)
    for epoch in range(epochs):
      one = stream[epoch * len(share):(epoch + 1) * len(share)]
      assert sorted(one) == sorted(share), (host, epoch, stream)
      assert all(a != b for a, b in zip(one, one[1:])), (host, one)
    reshuffled.append(stream[:len(share)] != stream[len(share):2 * len(share)])
    shares.append(share)
  assert any(reshuffled)  # each epoch is a new order
  assert sorted(n for share in shares for n in share) == sorted(names)
  assert {len(share) for share in shares} == {len(names) // 8}
  assert logged == [(num_files, 8, parts)]


def test_whole_files_per_host_when_the_hosts_divide_the_files():
  files = [f'f{i}' for i in range(16)]
  for host in range(8):
    share, parts = pipeline.pipeline_share(files, 8, host)
    assert parts == 1
    assert share == [(files[2 * host], 0, 1), (files[2 * host + 1], 0, 1)]
  # 1000 files (DeepLab2's COCO train) on 64 hosts: 8 parts per file, no
  # host opens more than 1000 / 64 + 2 files.
  shares = [pipeline.pipeline_share(list(range(1000)), 64, host)
            for host in range(64)]
  assert {parts for _, parts in shares} == {8}
  assert max(len(share) for share, _ in shares) <= 17
  covered = sorted((f, p) for share, _ in shares for f, first, end in share
                   for p in range(first, end))
  assert covered == [(f, p) for f in range(1000) for p in range(8)]


@pytest.mark.parametrize('hosts, skip', [(1, 30), (8, 7)])
def test_seeded_stream_resumes_exactly_after_skip(synthetic_dataset, tmp_path,
                                                  hosts, skip):
  """`skip_examples` = k continues the seeded stream at its k-th example
  (across epoch boundaries), crops and all."""
  _write_pod_records(tmp_path, 3, 8)
  options = _pod_options(synthetic_dataset, tmp_path, batch_size=hosts)
  context = tf.distribute.InputContext(
      num_input_pipelines=hosts, input_pipeline_id=hosts - 1,
      num_replicas_in_sync=hosts)

  def stream(skip_examples, count):
    dataset = pipeline.build_dataset(options, synthetic_dataset['info'], True,
                                     context, skip_examples=skip_examples)
    return _take(dataset, count)

  whole, resumed = stream(0, skip + 5), stream(skip, 5)
  for a, b in zip(whole[skip:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  assert any(not np.array_equal(whole[i][common.IMAGE],
                                whole[i + 1][common.IMAGE])
             for i in range(skip, skip + 4))

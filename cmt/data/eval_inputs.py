"""Evaluation inputs, split into what the device needs and what only the host
needs, joined by an integer index.

    build_device_dataset(dataset_options, dataset_info, input_context=None)
    host_examples(dataset_options, dataset_info) -> Iterator[HostExample]

Device inputs (numbers only, static shapes: what a TPU accepts), per replica
batch B and crop H x W:

  IMAGE [B, H, W, 3] float32, the image resized into the evaluation range
      (`pipeline.resize_range`) and padded bottom / right with the mean;
  IMAGE_SIZE [B, 2] int32, its valid top-left region;
  EVAL_INDEX [B] int32, the image's position in the evaluation set;
  IMAGE_VALID [B] bool.

B is `batch_size_per_replica`, or a global `batch_size` split over the
replicas (`config_checks.eval_batch_per_replica`). Input pipeline p of P
(one per host or worker, `tf.distribute.InputContext`) reads images p,
p + P, p + 2P, ... of the set. Its replicas take its batches in turn, so
with G = B x replicas, step s of the whole system holds exactly the images
sG ... sG + G - 1, in some order: the host receiving them reads the
host-only data in file order with only a step's worth held. After its last
image a pipeline sends invalid entries for ever (EVAL_INDEX -1, IMAGE_VALID
False, an empty IMAGE_SIZE), so every replica has a full batch at every
step and pipelines with one image fewer keep in step; the evaluator stops
after the step that completes the set (`cmt.trainer.eval_loop`).

Host-only data (`HostExample`, never sent to the device): the index, the
image name, the ground truth at the ORIGINAL size as stored (the panoptic
label and its crowd mask) and the encoded image (summary pictures). The
evaluator resizes each prediction back to that size with
`preprocessing.resize_label` and compares it with this ground truth, as
COCO's panopticapi compares PNGs.
"""

import dataclasses
import io
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf

from cmt import common
from cmt import config_checks
from cmt.data import dataset_info as dataset_info_lib
from cmt.data import pipeline
from cmt.data import preprocessing
from cmt.data import tfrecord_format


@dataclasses.dataclass(frozen=True)
class HostExample:
  """One evaluation image's host-only data."""
  index: int
  name: str
  # [H0, W0] int32 semantic * label_divisor + instance at the stored size.
  gt_panoptic: np.ndarray
  # [H0, W0] bool, thing class with instance 0 (`cmt.data.crop_targets`).
  gt_crowd: np.ndarray
  encoded_image: bytes

  @property
  def original_size(self) -> tuple[int, int]:
    return self.gt_panoptic.shape

  def decode_image(self) -> np.ndarray:
    """uint8 [H0, W0, 3] (summary pictures only)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(io.BytesIO(self.encoded_image)) as image:
      return np.asarray(image.convert('RGB'))


def _records(dataset_options) -> tf.data.Dataset:
  """Serialized examples of the evaluation set, in file order."""
  files = pipeline.list_files(dataset_options)
  return tf.data.Dataset.from_tensor_slices(files).flat_map(
      tf.data.TFRecordDataset)


def _device_example_fn(dataset_options):
  crop_size = tuple(dataset_options.crop_size)
  resize_range = pipeline.resize_range(dataset_options, is_training=False)

  def example_fn(index, serialized):
    decoded = tfrecord_format.decode_example(serialized)
    image = tf.cast(decoded['image'], tf.float32)
    size = preprocessing.resized_size(decoded['size'], *resize_range)
    image = preprocessing.pad_image_to_crop(
        preprocessing.resize_image(image, size), crop_size)
    return {common.IMAGE: image, common.IMAGE_SIZE: size,
            common.EVAL_INDEX: tf.cast(index, tf.int32),
            common.IMAGE_VALID: tf.constant(True)}

  return example_fn


def _padding_element(crop_size) -> dict:
  return {
      common.IMAGE: tf.fill([*crop_size, 3], preprocessing.MEAN_PIXEL),
      common.IMAGE_SIZE: tf.zeros([2], tf.int32),
      common.EVAL_INDEX: tf.constant(-1, tf.int32),
      common.IMAGE_VALID: tf.constant(False)}


def per_replica_batch(dataset_options,
                      input_context: Optional[tf.distribute.InputContext]
                      ) -> int:
  """Images per replica (B of the module docstring) on the replicas of
  `input_context` (one without)."""
  replicas = input_context.num_replicas_in_sync if input_context else 1
  problems = config_checks.eval_batch_problems(dataset_options, replicas,
                                               'DatasetOptions')
  if problems:
    raise ValueError('; '.join(problems))
  return config_checks.eval_batch_per_replica(dataset_options, replicas)


def shard(dataset: tf.data.Dataset,
          input_context: Optional[tf.distribute.InputContext]
          ) -> tf.data.Dataset:
  """This input pipeline's share: elements p, p + P, p + 2P, ... By
  element, not by file: the host joins the results in file order."""
  if input_context is None:
    return dataset
  return dataset.shard(input_context.num_input_pipelines,
                       input_context.input_pipeline_id)


def pad_and_batch(dataset: tf.data.Dataset, crop_size, batch: int
                  ) -> tf.data.Dataset:
  """Single device elements -> full batches of `batch`, the last one
  completed with invalid entries, which then continue for ever."""
  padding = tf.data.Dataset.from_tensors(
      _padding_element(tuple(crop_size))).repeat()
  dataset = dataset.concatenate(padding).batch(batch, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = True
  # Sharded by `shard`, never again by tf.distribute.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.OFF)
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def build_device_dataset(dataset_options,
                         dataset_info: dataset_info_lib.DatasetInfo,
                         input_context: Optional[
                             tf.distribute.InputContext] = None
                         ) -> tf.data.Dataset:
  """The device inputs of the module docstring, batched per replica: the
  images of this input pipeline, then padding without end."""
  del dataset_info  # the device inputs carry no labels
  pipeline.validate_options(dataset_options, is_training=False)
  batch = per_replica_batch(dataset_options, input_context)
  # Sharded before decoding: a pipeline decodes only its own images.
  records = shard(_records(dataset_options).enumerate(), input_context)
  dataset = records.map(_device_example_fn(dataset_options),
                        num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  return pad_and_batch(dataset, dataset_options.crop_size, batch)


_HOST_FEATURES = {
    key: tf.io.FixedLenFeature((), dtype) for key, dtype in (
        (tfrecord_format.ENCODED_IMAGE, tf.string),
        (tfrecord_format.IMAGE_FILENAME, tf.string),
        (tfrecord_format.IMAGE_HEIGHT, tf.int64),
        (tfrecord_format.IMAGE_WIDTH, tf.int64),
        (tfrecord_format.ENCODED_LABEL, tf.string))}


def host_examples(dataset_options, dataset_info: dataset_info_lib.DatasetInfo
                  ) -> Iterator[HostExample]:
  """The host-only data of every evaluation image, in the device's order."""
  thing = np.asarray(dataset_info.thing_mask)
  divisor = dataset_info.label_divisor
  parsed = _records(dataset_options).map(
      lambda serialized: tf.io.parse_single_example(serialized,
                                                    _HOST_FEATURES),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  for index, features in enumerate(parsed.prefetch(tf.data.AUTOTUNE)):
    size = (int(features[tfrecord_format.IMAGE_HEIGHT]),
            int(features[tfrecord_format.IMAGE_WIDTH]))
    label = np.frombuffer(features[tfrecord_format.ENCODED_LABEL].numpy(),
                          '<i4').reshape(size)
    semantic = label // divisor
    if semantic.max(initial=0) >= len(thing) or label.min(initial=0) < 0:
      raise ValueError(
          f'{features[tfrecord_format.IMAGE_FILENAME].numpy().decode()}: '
          f'label classes exceed the {len(thing) - 1} classes of '
          f'{dataset_info.name}')
    yield HostExample(
        index=index,
        name=features[tfrecord_format.IMAGE_FILENAME].numpy().decode('utf-8'),
        gt_panoptic=label.astype(np.int32),
        gt_crowd=thing[semantic] & (label % divisor == 0),
        encoded_image=features[tfrecord_format.ENCODED_IMAGE].numpy())

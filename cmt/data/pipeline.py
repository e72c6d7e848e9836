"""The `tf.data` input pipeline: TFRecords -> batches of images and targets.

    build_dataset(dataset_options, dataset_info, is_training,
                  input_context=None, skip_examples=0) -> tf.data.Dataset

Each element is a dict keyed by `cmt.common` constants (shapes per replica
batch B, crop H x W, K = max_num_masks):

  IMAGE [B, H, W, 3] float32 in [0, 255], padded with 127.5;
  GT_SEMANTIC, GT_PANOPTIC, GT_MASK_ID [B, H, W] int32;
  GT_PIXEL_WEIGHT, GT_CROWD [B, H, W] float32;
  GT_MASK_CLASS [B, K] int32; GT_MASK_VALID, GT_MASK_IS_THING [B, K] float32;
  IMAGE_SIZE, ORIGINAL_IMAGE_SIZE [B, 2] int32; IMAGE_NAME [B] string.
(targets: `cmt.data.crop_targets`).

Training (`is_training=True`): epoch after epoch, each a fresh shuffle of
this input pipeline's share of the files and of its records (so an epoch
holds every record of the share once); per image: decode, resize to
[min_resize_value, max_resize_value], random scale (`augmentations`), pad
with the mean at a random place to at least the crop, random crop to
`crop_size`, random flip (`flip_probability`); batched with
`drop_remainder=True`, so every shape is static. IMAGE_SIZE is the size
after resizing and random scaling, before padding and cropping.

Evaluation (`is_training=False`; `cmt-train` evaluates with the device /
host split of `cmt.data.eval_inputs` instead): one pass in file order, no augmentation
(`augmentations` is not used); resize so the image fits the crop (sides at
most `max_resize_value`, or the crop when that is 0), pad bottom and right
to the crop. The valid region is the top-left IMAGE_SIZE; predictions
resized back to ORIGINAL_IMAGE_SIZE match the stored annotation. The last
batch may be partial (every image is evaluated), so only the batch
dimension is dynamic.

Determinism: with `seed` != 0 the order (file and record shuffles of every
epoch) and every random augmentation are fixed by the seed: each example
draws from a stateless seed (seed, input pipeline, example index), so
parallel maps cannot change results, and `skip_examples` = k gives exactly
the stream from its k-th example on (a resumed run whose input iterator
could not be checkpointed; costs reading, not decoding, at most two epochs
of the pipeline's records). `seed` = 0 draws a fresh seed and, for
training, allows non-deterministic order for speed; evaluation always keeps
file order.

With an `input_context` (one input pipeline per host), the files are
shared out by `pipeline_share`: disjoint, the same number of records per
pipeline, whole files when the pipeline count divides the file count, else
files split by record. The batch is
`input_context.get_per_replica_batch_size(batch_size)`.
"""

import math
import random
from typing import Optional

from absl import logging
import tensorflow as tf

from cmt import common
from cmt import config_checks
from cmt.data import dataset_info as dataset_info_lib
from cmt.data import preprocessing
from cmt.data import crop_targets as targets_lib
from cmt.data import tfrecord_format

_AUTOTUNE = tf.data.AUTOTUNE
# Starts the message of the class-range assertion (`record_errors` reads it).
CLASS_RANGE_MARKER = 'record class out of range'
# Records read in parallel from this many files while training.
_INTERLEAVE_CYCLE = 8


def _option_error(field: str, message: str) -> ValueError:
  return ValueError(f'DatasetOptions.{field}: {message}')


def validate_options(options, is_training: bool) -> None:
  """Checks every DatasetOptions field this pipeline uses; errors name it
  (the checks of `cmt.config_checks`)."""
  problems = config_checks.dataset_problems(
      options, 'DatasetOptions',
      (config_checks.TRAIN,) if is_training else (config_checks.EVAL,))
  if problems:
    raise ValueError('; '.join(problems))


def list_files(options) -> list[str]:
  """The sorted TFRecord files matching `file_pattern`; error if none."""
  files = []
  for pattern in options.file_pattern:
    matches = tf.io.gfile.glob(pattern)
    if not matches:
      raise _option_error('file_pattern', f'{pattern!r} matches no file')
    files.extend(matches)
  return sorted(set(files))


def resize_range(options, is_training: bool):
  """(min_size, max_size) pairs for `preprocessing.resized_size`."""
  min_size = ((options.min_resize_value,) * 2
              if options.min_resize_value else None)
  max_size = ((options.max_resize_value,) * 2
              if options.max_resize_value else None)
  if not is_training and max_size is None:
    max_size = tuple(options.crop_size)  # evaluation images must fit
  return min_size, max_size


def _scale_and_flip(options, is_training: bool):
  if not is_training or not options.HasField('augmentations'):
    return (1.0, 1.0, 0.0), 0.0
  a = options.augmentations
  return ((a.min_scale_factor, a.max_scale_factor, a.scale_factor_step_size),
          a.flip_probability)


def _checked_classes(label: tf.Tensor, name: tf.Tensor,
                     info: dataset_info_lib.DatasetInfo) -> tf.Tensor:
  """`label`, after asserting its classes are among the configured ones:
  records built with other categories (COCO read with a custom
  categories.json) fail here, and `record_errors` names the cause."""
  largest = tf.reduce_max(label // info.label_divisor)
  check = tf.debugging.Assert(
      largest <= info.num_classes,
      [CLASS_RANGE_MARKER, largest, info.num_classes, name])
  with tf.control_dependencies([check]):
    return tf.identity(label)


def make_example_fn(options, info: dataset_info_lib.DatasetInfo,
                    is_training: bool):
  """(serialized example, [2] int64 seed) -> one element of the pipeline."""
  crop_size = tuple(options.crop_size)
  min_size, max_size = resize_range(options, is_training)
  scale_range, flip_probability = _scale_and_flip(options, is_training)

  def example_fn(serialized, seed):
    decoded = tfrecord_format.decode_example(serialized)
    image = tf.cast(decoded['image'], tf.float32)
    label = _checked_classes(decoded['label'], decoded['name'], info)
    if min_size or max_size:
      image, label = preprocessing.resize(
          image, label,
          preprocessing.resized_size(decoded['size'], min_size, max_size))
    if is_training:
      image, label, image_size = preprocessing.augment_and_crop(
          image, label, seed, crop_size, scale_range, flip_probability)
    else:
      image_size = tf.shape(label)
      image, label = preprocessing.pad_to_crop(image, label, crop_size)
    element = targets_lib.compute_targets(label, info, options.max_num_masks)
    element.update({
        common.IMAGE: image,
        common.IMAGE_SIZE: image_size,
        common.ORIGINAL_IMAGE_SIZE: decoded['size'],
        common.IMAGE_NAME: decoded['name'],
    })
    return element

  return example_fn


def pipeline_share(files: list[str], num_pipelines: int, pipeline_id: int
                   ) -> tuple[list[tuple[str, int, int]], int]:
  """Input pipeline `pipeline_id`'s share of the sorted `files`: a list of
  (file, first part, end part) and the number of parts q per file.

  With F files and N pipelines, g = gcd(F, N): each file is cut by record
  into q = N / g parts (record i of a file is in part i mod q) and the F q
  parts, in file order, are dealt out in runs of F / g. The shares are
  disjoint and cover every record; each holds F / g parts (so the same
  number of records, up to 2 (q - 1) where files end); a pipeline reads at
  most F / N + 2 files, and F / N whole ones when N divides F (q = 1).
  """
  divisor = math.gcd(len(files), num_pipelines)
  parts = num_pipelines // divisor
  run = len(files) // divisor
  begin, end = pipeline_id * run, (pipeline_id + 1) * run
  share = []
  for index in range(begin // parts, (end - 1) // parts + 1):
    first = max(begin, index * parts) - index * parts
    last = min(end, (index + 1) * parts) - index * parts
    share.append((files[index], first, last))
  return share, parts


def _share_records(files, firsts, ends, parts: int, cycle: int = 1,
                   deterministic: bool = True) -> tf.data.Dataset:
  """The serialized records of the (file, first, end) parts: `cycle` files
  read at a time (1: in order)."""
  def read(file, first, end):
    records = tf.data.TFRecordDataset(file)
    if parts == 1:
      return records
    in_share = lambda i, _: (i % parts >= first) & (i % parts < end)
    return records.enumerate().filter(in_share).map(lambda _, r: r)

  cycle = min(cycle, int(files.shape[0]))
  return tf.data.Dataset.from_tensor_slices((files, firsts, ends)).interleave(
      read, cycle_length=cycle, num_parallel_calls=_AUTOTUNE,
      deterministic=deterministic)


def _share_tensors(share):
  """(files, first parts, end parts) of a share as string / int64 tensors."""
  files, firsts, ends = zip(*share)
  return (tf.constant(files), tf.constant(firsts, tf.int64),
          tf.constant(ends, tf.int64))


def _block_shuffle(records, block: int, seed) -> tf.data.Dataset:
  """Permutes each run of `block` records with the stateless seed (`seed`
  folded with the run's index): a shuffle buffer whose draws the seed
  fixes (`Dataset.shuffle` takes no per-epoch tensor seed once a global
  seed is set)."""
  def permute(index, run):
    order = tf.random.experimental.stateless_shuffle(
        tf.range(tf.shape(run)[0]),
        seed=tf.random.experimental.stateless_fold_in(seed, index))
    return tf.gather(run, order)

  return records.batch(block).enumerate().map(permute).unbatch()


def _training_records(share, parts: int, seed: int, shuffle_buffer: int,
                      deterministic: bool, skip: int) -> tf.data.Dataset:
  """Serialized records, epoch after epoch from example `skip` on: epoch e
  shuffles the share's parts and its records (in runs of `shuffle_buffer`)
  with seeds of (seed, e)."""
  files, firsts, ends = _share_tensors(share)

  def epoch(index):
    order = tf.random.experimental.stateless_shuffle(
        tf.range(len(share)), seed=tf.stack([tf.constant(seed, tf.int64),
                                             index]))
    records = _share_records(tf.gather(files, order), tf.gather(firsts, order),
                             tf.gather(ends, order), parts,
                             _INTERLEAVE_CYCLE, deterministic)
    return _block_shuffle(records, shuffle_buffer,
                          tf.stack([tf.constant(seed, tf.int64), index]))

  first_epoch = within = 0
  if skip:
    epoch_size = int(_share_records(files, firsts, ends, parts).reduce(
        tf.constant(0, tf.int64), lambda count, _: count + 1))
    if not epoch_size:
      raise _option_error('file_pattern', 'this input pipeline\'s share of '
                          'the files holds no record')
    first_epoch, within = divmod(skip, epoch_size)
  return tf.data.Dataset.counter(first_epoch).flat_map(epoch).skip(within)


def _require_records(share, parts: int, num_pipelines: int):
  """A training share of record parts must hold a record (its epochs must
  not be empty)."""
  if parts > 1 and not any(
      next(iter(tf.data.TFRecordDataset(f).skip(first).take(1)), None)
      is not None for f, first, _ in share):
    raise _option_error('file_pattern', f'too few records for '
                        f'{num_pipelines} input pipelines: one of them gets '
                        'none')


def _log_split_files(num_files: int, num_pipelines: int, parts: int):
  logging.info(
      'Input: %d TFRecord files over %d input pipelines: each file is split '
      'by record into %d parts so every pipeline reads an equal, disjoint '
      'share; a file count that is a multiple of %d (cmt-build-data '
      '--num_shards) lets each read whole files', num_files, num_pipelines,
      parts, num_pipelines)


def build_dataset(dataset_options, dataset_info: dataset_info_lib.DatasetInfo,
                  is_training: bool,
                  input_context: Optional[tf.distribute.InputContext] = None,
                  skip_examples: int = 0) -> tf.data.Dataset:
  """The input pipeline of the module docstring."""
  validate_options(dataset_options, is_training)
  files = list_files(dataset_options)
  seed = dataset_options.seed
  # Evaluation keeps file order (cheap); training trades it for speed
  # unless seeded.
  deterministic = seed != 0 or not is_training
  base_seed = seed if seed else random.SystemRandom().randrange(1, 2**31)
  if skip_examples and not (seed and is_training):
    raise ValueError('skip_examples needs seeded training input')
  batch_size = dataset_options.batch_size
  num_pipelines, pipeline_id = 1, 0
  if input_context is not None:
    batch_size = input_context.get_per_replica_batch_size(batch_size)
    num_pipelines = input_context.num_input_pipelines
    pipeline_id = input_context.input_pipeline_id
  share, parts = pipeline_share(files, num_pipelines, pipeline_id)
  if is_training:
    _require_records(share, parts, num_pipelines)
  if parts > 1 and pipeline_id == 0:
    _log_split_files(len(files), num_pipelines, parts)

  if is_training:
    dataset = _training_records(share, parts, base_seed,
                                dataset_options.shuffle_buffer_size,
                                deterministic, skip_examples)
  else:
    dataset = _share_records(*_share_tensors(share), parts)
  # A stateless seed per example: (base seed + pipeline, example index).
  dataset = dataset.enumerate(start=skip_examples)
  replica_seed = base_seed + 7919 * pipeline_id
  example_fn = make_example_fn(dataset_options, dataset_info, is_training)
  dataset = dataset.map(
      lambda index, serialized: example_fn(
          serialized, tf.stack([tf.constant(replica_seed, tf.int64), index])),
      num_parallel_calls=_AUTOTUNE, deterministic=deterministic)
  dataset = dataset.batch(batch_size, drop_remainder=is_training)
  options = tf.data.Options()
  options.deterministic = deterministic
  if input_context is not None:
    # Sharding is done above; keep tf.distribute from sharding again.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF)
  dataset = dataset.with_options(options)
  return dataset.prefetch(_AUTOTUNE)

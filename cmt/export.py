"""`cmt-export`: a trained checkpoint -> a self-contained SavedModel.

The SavedModel's `serving_default` signature takes ONE uint8 image
`image` [H, W, C] of any size (C = 1 grayscale, 2 grayscale + alpha, 3 RGB
or 4 RGBA; alpha is dropped, gray is repeated over RGB) and returns, at
the input's own size [H, W]:

  panoptic  int32 semantic * label_divisor + instance (0 = void)
  semantic  int32 contiguous class 0..C (0 = void)
  instance  int32 instance number within its class (0 for stuff / void)

and, per cluster center n (N entries, the static-shape segment list of
`cmt.model.post_processing`):

  segment_labels  int32 panoptic label of the segment center n produced
                  (0 if none; centers merged into one stuff region share it)
  segment_classes int32 segment_labels // label_divisor
  segment_scores  float32 its ranking score (0 if none)

Inside: the evaluation preprocessing of `eval_dataset_options` (resize into
[min_resize_value, max_resize_value], pad with the mean to crop_size, valid
region top-left; `cmt.data.preprocessing`), the model, `post_process` with
`evaluator_options`, then the valid region cropped and resized (nearest,
aligned corners, the inverse of the label resize) back to [H, W].

A second signature, `metadata`, takes nothing and returns the dataset
description so that a client needs neither `cmt` nor the config:
class_names [C + 1] string (index 0 'void'), category_ids [C + 1] int32
(the dataset's own ids, 0 for void), is_thing [C + 1] bool, colors
[C + 1, 3] uint8, label_divisor int32 scalar, crop_size [2] int32.

Only TensorFlow ops are saved (the model's variables, not its Keras
object), so `tf.saved_model.load(path)` works in a process that never
imports `cmt`.
"""

import contextlib
import gc
import logging
from typing import Optional

import tensorflow as tf

from cmt import atomic_files
from cmt import cli
from cmt import common
from cmt import config as config_lib
from cmt import config_checks
from cmt.data import dataset_info as dataset_info_lib
from cmt.data import pipeline
from cmt.data import preprocessing
from cmt.model import builder
from cmt.model import post_processing
from cmt.trainer import checkpoints

SERVING_SIGNATURE = 'serving_default'
METADATA_SIGNATURE = 'metadata'
# The file that makes a folder a SavedModel; written last.
SAVED_MODEL_FILE = 'saved_model.pb'


class CheckpointError(ValueError):
  """A checkpoint path that does not hold this model."""


def load_trained_model(options, dataset_info: dataset_info_lib.DatasetInfo,
                       checkpoint_path: str):
  """Builds the model of `options` at the eval crop and restores every one
  of its variables from a `cmt-train` checkpoint ({model, optimizer, ...};
  only `model` is read). CheckpointError if a variable is missing."""
  # Fails before building.
  path = checkpoints.resolve_checkpoint(checkpoint_path, '--checkpoint_path')
  crop = crop_size_of(options)
  model = builder.build_model(options, dataset_info)
  model(tf.zeros([1, *crop, 3]), training=False)
  # A failed restore leaves checkpoint values nothing consumed, and
  # TensorFlow warns about each of them (hundreds of lines) when they are
  # collected: collect them here, with its warnings off.
  with _tensorflow_warnings_off():
    problem = _restore(model, path)
    if problem:
      del model
      gc.collect()
  if problem:
    raise CheckpointError(f'--checkpoint_path={checkpoint_path}: {problem}')
  return model


def _restore(model, path: str) -> Optional[str]:
  """Reads `model` from checkpoint `path`; the problem, or None."""
  try:
    status = tf.train.Checkpoint(model=model).read(path)
    status.expect_partial()  # the optimizer and iterator are not wanted
    status.assert_existing_objects_matched()
  except (tf.errors.NotFoundError, tf.errors.DataLossError) as error:
    return f'cannot read: {cli.one_line(error.message)}'
  except (AssertionError, ValueError) as error:  # missing / other shapes
    return ('does not hold this model (config and checkpoint disagree): '
            f'{cli.one_line(error)[:300]}')
  return None


@contextlib.contextmanager
def _tensorflow_warnings_off():
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def crop_size_of(options) -> tuple[int, int]:
  """The eval crop (H, W); a clear error when it is not set."""
  crop = tuple(options.eval_dataset_options.crop_size)
  if len(crop) != 2:
    raise config_lib.ConfigError(
        'eval_dataset_options.crop_size must hold 2 values (height, width) '
        f'for export, got {list(crop)}')
  return crop


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """uint8 [H, W, C] with C in 1..4 -> [H, W, 3]: gray repeated, alpha
  dropped."""
  channels = tf.shape(image)[-1]
  tf.debugging.assert_rank(image, 3, message='image must be [H, W, C]')
  with tf.control_dependencies([tf.debugging.assert_less_equal(
      channels, 4, message='image must have 1, 2, 3 or 4 channels')]):
    gray = tf.tile(image[..., :1], [1, 1, 3])
    rgb = tf.cond(channels >= 3, lambda: image[..., :3], lambda: gray)
  rgb.set_shape([None, None, 3])
  return rgb


class PanopticInference(tf.Module):
  """uint8 image of any size -> panoptic maps at that size (module doc)."""

  def __init__(self, model, options,
               dataset_info: dataset_info_lib.DatasetInfo):
    super().__init__(name='panoptic_inference')
    post_processing.check_options(options.evaluator_options)
    # Track the variables only: saving the Keras object itself would trace
    # every layer's call again (slow) for nothing a client uses.
    object.__setattr__(self, '_model', model)
    self.model_variables = list(model.variables)
    self._options = options
    self._info = dataset_info
    self._crop = crop_size_of(options)
    self._resize_range = pipeline.resize_range(
        options.eval_dataset_options, is_training=False)

  @property
  def dataset_info(self) -> dataset_info_lib.DatasetInfo:
    return self._info

  @property
  def evaluator_options(self):
    return self._options.evaluator_options

  def preprocess(self, image: tf.Tensor):
    """uint8 [H, W, C] -> (float [1, crop_h, crop_w, 3], [2] resized size)."""
    rgb = tf.cast(to_rgb(image), tf.float32)
    size = tf.shape(rgb)[:2]
    resized = preprocessing.resized_size(size, *self._resize_range)
    padded = preprocessing.pad_image_to_crop(
        preprocessing.resize_image(rgb, resized), self._crop)
    return padded[tf.newaxis], resized

  def model_outputs(self, batch: tf.Tensor) -> dict:
    """The model's raw output dict for a `preprocess`ed batch, with what
    only the figures need (CROSS_ATTENTION)."""
    return self._model(batch, training=False, figure_outputs=True)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None], tf.uint8, name='image')])
  def serve(self, image):
    original_size = tf.shape(image)[:2]
    batch, resized = self.preprocess(image)
    outputs = self._model(batch, training=False)
    predictions = post_processing.post_process(
        outputs, self._options.evaluator_options, self._info, self._crop)
    panoptic = predictions[common.PRED_PANOPTIC][0, :resized[0],
                                                 :resized[1]]
    panoptic = preprocessing.resize_label(panoptic, original_size)
    divisor = self._info.label_divisor
    labels = predictions[common.PRED_SEGMENT_LABELS][0]
    return {
        'panoptic': panoptic,
        'semantic': panoptic // divisor,
        'instance': panoptic % divisor,
        'segment_labels': labels,
        'segment_classes': labels // divisor,
        'segment_scores': predictions[common.PRED_SEGMENT_SCORES][0],
    }

  @tf.function(input_signature=[])
  def metadata(self):
    info = self._info
    return {
        'class_names': tf.constant(info.class_names),
        'category_ids': tf.constant(info.dataset_ids, tf.int32),
        'is_thing': tf.constant(info.thing_mask),
        'colors': tf.constant(info.class_colors, tf.uint8),
        'label_divisor': tf.constant(info.label_divisor, tf.int32),
        'crop_size': tf.constant(self._crop, tf.int32),
    }


def build_inference(options, checkpoint_path: str) -> PanopticInference:
  """Config + checkpoint -> the in-process inference module."""
  config_lib.require_runnable(options, (config_checks.EXPORT,))
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  model = load_trained_model(options, info, checkpoint_path)
  return PanopticInference(model, options, info)


def export(inference: PanopticInference, output_path: str,
           overwrite: bool = False) -> str:
  """Saves `inference` as a SavedModel at `output_path` (local or a URL),
  so that `saved_model.pb` appears last (`atomic_files.atomic_directory`:
  an old one is replaced only with `overwrite`)."""
  with atomic_files.atomic_directory(output_path, overwrite,
                                     last_file=SAVED_MODEL_FILE) as temporary:
    tf.saved_model.save(
        inference, temporary,
        signatures={SERVING_SIGNATURE: inference.serve,
                    METADATA_SIGNATURE: inference.metadata})
  return output_path

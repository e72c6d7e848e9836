"""The TFRecord example format, identical to DeepLab2's panoptic format.

One `tf.train.Example` per image, with these features (DeepLab2's keys, so
COCO TFRecords built by DeepLab2's `build_coco_data.py` read unchanged):

| key | type | value |
| --- | --- | --- |
| `image/encoded` | bytes | the encoded RGB image (JPEG or PNG) |
| `image/filename` | bytes | the file name without extension (COCO image id) |
| `image/format` | bytes | `jpeg` or `png` |
| `image/height`, `image/width` | int64 | image size |
| `image/channels` | int64 | 3 |
| `image/segmentation/class/encoded` | bytes | the panoptic label, int32 raw |
| `image/segmentation/class/format` | bytes | `raw` |

The label is a row-major little-endian int32 [height, width] array of
`semantic * label_divisor + instance` (see `cmt.data.panoptic_label` for the
exact encoding of void and crowd).
"""

import numpy as np
import tensorflow as tf

ENCODED_IMAGE = 'image/encoded'
IMAGE_FILENAME = 'image/filename'
IMAGE_FORMAT = 'image/format'
IMAGE_HEIGHT = 'image/height'
IMAGE_WIDTH = 'image/width'
IMAGE_CHANNELS = 'image/channels'
ENCODED_LABEL = 'image/segmentation/class/encoded'
LABEL_FORMAT = 'image/segmentation/class/format'

RAW_LABEL_FORMAT = 'raw'
IMAGE_FORMATS = ('jpeg', 'png')


def _bytes(value) -> tf.train.Feature:
  if isinstance(value, str):
    value = value.encode('utf-8')
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_example(image_bytes: bytes, image_format: str, name: str,
                   panoptic_label: np.ndarray) -> bytes:
  """Serialises one image and its [H, W] int32 panoptic label."""
  if image_format not in IMAGE_FORMATS:
    raise ValueError(f'image format {image_format!r} is not one of '
                     f'{IMAGE_FORMATS}')
  if panoptic_label.ndim != 2:
    raise ValueError(f'panoptic label must be [height, width], got shape '
                     f'{panoptic_label.shape}')
  height, width = panoptic_label.shape
  label_bytes = np.ascontiguousarray(panoptic_label, dtype='<i4').tobytes()
  feature = {
      ENCODED_IMAGE: _bytes(image_bytes),
      IMAGE_FILENAME: _bytes(name),
      IMAGE_FORMAT: _bytes(image_format),
      IMAGE_HEIGHT: _int64(height),
      IMAGE_WIDTH: _int64(width),
      IMAGE_CHANNELS: _int64(3),
      ENCODED_LABEL: _bytes(label_bytes),
      LABEL_FORMAT: _bytes(RAW_LABEL_FORMAT),
  }
  example = tf.train.Example(features=tf.train.Features(feature=feature))
  return example.SerializeToString()


_FEATURES = {
    ENCODED_IMAGE: tf.io.FixedLenFeature((), tf.string),
    IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string),
    IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64),
    IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64),
    ENCODED_LABEL: tf.io.FixedLenFeature((), tf.string),
}


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
  """Encoded JPEG / PNG -> uint8 [H, W, 3]. The one image decoder: training,
  evaluation and `cmt-predict` see the same pixels (JPEG decoders differ
  by a few grey levels, e.g. TensorFlow's default IDCT and PIL's)."""
  image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8,
                             expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def decode_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
  """Parses one serialised example (graph-safe, for `tf.data.Dataset.map`).

  Returns a dict with `image` uint8 [H, W, 3], `label` int32 [H, W], `name`
  string scalar and `size` int32 [2] (height, width).
  """
  parsed = tf.io.parse_single_example(serialized, _FEATURES)
  image = decode_image(parsed[ENCODED_IMAGE])
  size = tf.cast(tf.stack([parsed[IMAGE_HEIGHT], parsed[IMAGE_WIDTH]]),
                 tf.int32)
  label = tf.reshape(tf.io.decode_raw(parsed[ENCODED_LABEL], tf.int32), size)
  return {'image': image, 'label': label, 'name': parsed[IMAGE_FILENAME],
          'size': size}

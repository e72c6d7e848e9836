"""Image and label preprocessing in TensorFlow: resize, scale, pad, crop, flip.

The geometry follows DeepLab2's `input_preprocessing`: bilinear resizing of
the image and nearest-neighbour resizing of the label, both with aligned
corners (so a 4k + 1 crop keeps its stride-4 grid on pixel centres); images
are padded with the mean pixel value 127.5 (0 after the model's
`x / 127.5 - 1`), labels with 0 (void).

All randomness is stateless: each random op takes a [2] int seed, so one
example's augmentation depends only on its seed, never on thread timing.
"""

from typing import Optional

import tensorflow as tf

MEAN_PIXEL = 127.5
LABEL_PAD_VALUE = 0  # void


def resized_size(size: tf.Tensor, min_size: Optional[tuple[int, int]],
                 max_size: Optional[tuple[int, int]]) -> tf.Tensor:
  """[2] int32 size after resizing to a range, keeping the aspect ratio.

  With `min_size` (h, w) the image is scaled (up or down) so both sides
  reach at least their minimum: s = max(h_min / H, w_min / W). Then, with
  `max_size`, it is shrunk (never enlarged) until both sides fit:
  s' = min(s, h_max / H, w_max / W). Sides are floor(H s'), floor(W s'),
  but at least 1: a 40 x 5000 image fitted into 33 x 33 is 1 x 33, not
  0 x 33 (which no resize can produce).
  """
  size_float = tf.cast(size, tf.float32)
  scale = tf.constant(1.0)
  if min_size:
    scale = tf.reduce_max(tf.constant(min_size, tf.float32) / size_float)
  if max_size:
    fit = tf.reduce_min(tf.constant(max_size, tf.float32) / size_float)
    # Only shrinks what the min step produced (or the original).
    scale = tf.minimum(scale, fit) if min_size else tf.minimum(1.0, fit)
  return tf.maximum(tf.cast(tf.floor(size_float * scale), tf.int32), 1)


def resize_image(image: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  """Bilinear, aligned corners: float [H, W, 3] -> [size[0], size[1], 3]."""
  return tf.compat.v1.image.resize(
      image, size, method=tf.image.ResizeMethod.BILINEAR, align_corners=True)


def resize_label(label: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  """THE label resize of the project: int [H, W] -> [size[0], size[1]].

  Nearest neighbour with aligned corners (DeepLab2's convention), so the
  first and last rows / columns map onto each other. One function for every
  label map that changes size: the ground truth in the input pipeline, the
  SavedModel's prediction back to its input's size (`cmt-export`,
  `cmt-predict`) and the evaluator's prediction back to the image's
  original size, so all of them give the same pixels.
  """
  return tf.compat.v1.image.resize(
      label[..., tf.newaxis], size,
      method=tf.image.ResizeMethod.NEAREST_NEIGHBOR,
      align_corners=True)[..., 0]


def resize(image: tf.Tensor, label: tf.Tensor, size: tf.Tensor
           ) -> tuple[tf.Tensor, tf.Tensor]:
  """Bilinear image [H, W, 3] float32 and nearest label [H, W] to `size`."""
  return resize_image(image, size), resize_label(label, size)


def random_scale_factor(seed: tf.Tensor, min_factor: float, max_factor: float,
                        step: float) -> tf.Tensor:
  """A scale factor in [min, max]: uniform, or on the grid min + k * step."""
  if min_factor == max_factor:
    return tf.constant(min_factor, tf.float32)
  if step == 0:
    return tf.random.stateless_uniform([], seed, min_factor, max_factor)
  num_steps = int(round((max_factor - min_factor) / step)) + 1
  index = tf.random.stateless_uniform([], seed, 0, num_steps, dtype=tf.int32)
  return min_factor + tf.cast(index, tf.float32) * step


def pad(image: tf.Tensor, label: tf.Tensor, offset: tf.Tensor,
        target_size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Pads to `target_size` with `offset` rows/columns before; mean / void."""
  size = tf.shape(label)
  after = target_size - size - offset
  paddings = tf.stack([tf.stack([offset[0], after[0]]),
                       tf.stack([offset[1], after[1]])])
  image = tf.pad(image - MEAN_PIXEL,
                 tf.concat([paddings, [[0, 0]]], axis=0)) + MEAN_PIXEL
  label = tf.pad(label, paddings, constant_values=LABEL_PAD_VALUE)
  return image, label


def random_offset(seed: tf.Tensor, margin: tf.Tensor) -> tf.Tensor:
  """[2] int32 offsets uniform in [0, margin] per axis (margin >= 0)."""
  seeds = tf.random.experimental.stateless_split(seed, 2)
  return tf.stack([
      tf.random.stateless_uniform([], seeds[i], 0, margin[i] + 1,
                                  dtype=tf.int32) for i in range(2)])


def random_flip(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor,
                probability: float) -> tuple[tf.Tensor, tf.Tensor]:
  """Flips both left-right with `probability`."""
  if probability <= 0:
    return image, label
  flip = tf.random.stateless_uniform([], seed) < probability
  return (tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image),
          tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label))


def augment_and_crop(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor,
                     crop_size: tuple[int, int], scale_range: tuple[float,
                                                                    float,
                                                                    float],
                     flip_probability: float
                     ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Training: random scale, pad to >= crop (random offset), random crop,
  random flip.

  Returns the image [crop_h, crop_w, 3], label [crop_h, crop_w] (static
  shapes) and the [2] size after scaling, before padding and cropping.
  """
  scale_seed, pad_seed, crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 4))
  scale = random_scale_factor(scale_seed, *scale_range)
  size = tf.cast(tf.cast(tf.shape(label), tf.float32) * scale, tf.int32)
  size = tf.maximum(size, 1)
  image, label = resize(image, label, size)
  crop = tf.constant(crop_size, tf.int32)
  # Pad (at a random place, as DeepLab2 does) until both sides reach the crop.
  padded_size = tf.maximum(size, crop)
  image, label = pad(image, label, random_offset(pad_seed, padded_size - size),
                     padded_size)
  # Random crop.
  offset = random_offset(crop_seed, padded_size - crop)
  image = tf.slice(image, tf.concat([offset, [0]], 0),
                   tf.concat([crop, [3]], 0))
  label = tf.slice(label, offset, crop)
  image, label = random_flip(image, label, flip_seed, flip_probability)
  image.set_shape([crop_size[0], crop_size[1], 3])
  label.set_shape(crop_size)
  return image, label, size


def pad_to_crop(image: tf.Tensor, label: tf.Tensor,
                crop_size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
  """Evaluation: pads bottom/right to the crop (the image must fit)."""
  size = tf.shape(label)
  crop = tf.constant(crop_size, tf.int32)
  with tf.control_dependencies([tf.debugging.assert_less_equal(
      size, crop, message='evaluation image larger than crop_size after '
      'resizing')]):
    image, label = pad(image, label, tf.zeros([2], tf.int32), crop)
  image.set_shape([crop_size[0], crop_size[1], 3])
  label.set_shape(crop_size)
  return image, label


def pad_image_to_crop(image: tf.Tensor, crop_size: tuple[int, int]
                      ) -> tf.Tensor:
  """Evaluation and inference without a label: the image of `pad_to_crop`."""
  no_label = tf.zeros(tf.shape(image)[:2], tf.int32)
  return pad_to_crop(image, no_label, crop_size)[0]

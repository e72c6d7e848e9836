"""Colours: one per panoptic segment, one per cluster center, heat maps."""

import colorsys

import numpy as np

VOID_COLOR = (0, 0, 0)


def distinct_colors(count: int, seed: int = 0) -> np.ndarray:
  """[count, 3] uint8 colours with hues spread by the golden ratio, so that
  neighbouring indices (cluster centers) differ clearly."""
  golden = 0.618033988749895
  colors = []
  for i in range(count):
    hue = (seed * 0.137 + i * golden) % 1.0
    saturation = 0.55 + 0.4 * ((i * 7) % 3) / 2
    value = 0.95 - 0.25 * ((i * 5) % 2)
    colors.append([round(255 * c) for c in
                   colorsys.hsv_to_rgb(hue, saturation, value)])
  return np.array(colors, np.uint8).reshape(count, 3)


def segment_color(class_color, instance: int) -> tuple[int, int, int]:
  """The class colour for stuff (instance 0); for the k-th thing of a class,
  the class colour with its brightness shifted by a deterministic amount,
  so instances of one class differ while keeping their class's hue."""
  base = np.asarray(class_color, np.float64)
  if instance == 0:
    return tuple(int(v) for v in base)
  # Alternate lighter / darker steps: +1, -1, +2, -2, ... of 28 levels.
  step = (instance + 1) // 2 * (1 if instance % 2 else -1)
  shifted = np.clip(base + 28 * step, 0, 255)
  if np.array_equal(shifted, base):  # saturated: move the hue instead
    shifted = np.roll(base, instance % 3)
  return tuple(int(v) for v in shifted)


def panoptic_colors(panoptic: np.ndarray, class_colors: np.ndarray,
                    label_divisor: int) -> np.ndarray:
  """[H, W] panoptic labels -> [H, W, 3] uint8, each segment its colour."""
  labels, inverse = np.unique(panoptic, return_inverse=True)
  palette = np.array([
      VOID_COLOR if label == 0 else
      segment_color(class_colors[label // label_divisor],
                    int(label % label_divisor)) for label in labels],
                     np.uint8).reshape(-1, 3)
  return palette[inverse.reshape(panoptic.shape)]


def heat_colors(values: np.ndarray) -> np.ndarray:
  """[H, W] values in [0, 1] -> [H, W, 3] uint8 on a black-red-yellow-white
  ramp (the "inferno"-like map the paper's Fig. 1 uses)."""
  v = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
  red = np.clip(3 * v, 0, 1)
  green = np.clip(3 * v - 1, 0, 1)
  blue = np.clip(3 * v - 2, 0, 1)
  return (255 * np.stack([red, green, blue], -1)).round().astype(np.uint8)

"""Overlays on an image: segments, their boundaries and class names, and
points (reference masks)."""

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cmt.vis import colors as colors_lib

# A name is drawn only where its text fits inside the segment's box and the
# segment covers at least this fraction of the image.
MIN_LABEL_AREA_FRACTION = 0.005
_BOUNDARY_COLOR = (255, 255, 255)


def font(size: int) -> ImageFont.ImageFont:
  """Pillow's built-in scalable font (no font file needed)."""
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1: fixed-size bitmap font
    return ImageFont.load_default()


def boundaries(label_map: np.ndarray) -> np.ndarray:
  """[H, W] bool, True where a 4-neighbour has another label."""
  edge = np.zeros(label_map.shape, bool)
  vertical = label_map[1:] != label_map[:-1]
  horizontal = label_map[:, 1:] != label_map[:, :-1]
  edge[1:] |= vertical
  edge[:-1] |= vertical
  edge[:, 1:] |= horizontal
  edge[:, :-1] |= horizontal
  return edge


def blend(image: np.ndarray, colors: np.ndarray, alpha: float,
          where: np.ndarray) -> np.ndarray:
  """image * (1 - alpha) + colors * alpha on `where`; uint8 [H, W, 3]."""
  mixed = (image.astype(np.float32) * (1 - alpha) +
           colors.astype(np.float32) * alpha)
  return np.where(where[..., None], mixed, image).round().astype(np.uint8)


def label_anchor(mask: np.ndarray) -> tuple[int, int]:
  """(row, col) of a segment pixel near its centroid, inside the segment
  even when it is not convex."""
  rows, cols = np.nonzero(mask)
  center_row, center_col = rows.mean(), cols.mean()
  nearest = np.argmin((rows - center_row) ** 2 + (cols - center_col) ** 2)
  return int(rows[nearest]), int(cols[nearest])


def draw_text_boxes(canvas: Image.Image,
                    texts: Sequence[tuple[str, tuple[int, int]]],
                    size: int):
  """Draws each (text, (row, col)) centred there on a dark box."""
  draw = ImageDraw.Draw(canvas)
  text_font = font(size)
  for text, (row, col) in texts:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=text_font)
    width, height = right - left, bottom - top
    x = min(max(col - width // 2, 0), max(canvas.width - width - 2, 0))
    y = min(max(row - height // 2, 0), max(canvas.height - height - 2, 0))
    draw.rectangle([x - 1, y - 1, x + width + 1, y + height + 1],
                   fill=(0, 0, 0))
    draw.text((x - left, y - top), text, fill=(255, 255, 255),
              font=text_font)


def panoptic_overlay(image: np.ndarray, panoptic: np.ndarray,
                     class_colors: np.ndarray, class_names: Sequence[str],
                     label_divisor: int, alpha: float = 0.55,
                     draw_names: bool = True) -> Image.Image:
  """The image with each segment in its own colour, white boundaries and,
  where the segment is big enough to read, its class name."""
  image = np.asarray(image, np.uint8)
  if image.shape[:2] != panoptic.shape:
    raise ValueError(f'image {image.shape[:2]} and panoptic map '
                     f'{panoptic.shape} differ in size')
  colored = colors_lib.panoptic_colors(panoptic, class_colors, label_divisor)
  out = blend(image, colored, alpha, panoptic != 0)
  out[boundaries(panoptic)] = _BOUNDARY_COLOR
  canvas = Image.fromarray(out)
  if draw_names:
    height, width = panoptic.shape
    size = max(8, min(height, width) // 30)
    probe = ImageDraw.Draw(canvas)
    texts = []
    for label in np.unique(panoptic):
      if label == 0:
        continue
      mask = panoptic == label
      if mask.sum() < MIN_LABEL_AREA_FRACTION * height * width:
        continue
      name = str(class_names[label // label_divisor])
      left, top, right, bottom = probe.textbbox((0, 0), name,
                                                font=font(size))
      rows, cols = np.nonzero(mask)
      if (right - left > cols.max() - cols.min() + 1 or
          bottom - top > rows.max() - rows.min() + 1):
        continue  # the name would spill far beyond its segment
      texts.append((name, label_anchor(mask)))
    draw_text_boxes(canvas, texts, size)
  return canvas


def draw_points(canvas: Image.Image, points: np.ndarray,
                colors: np.ndarray, radius: int = 3):
  """Draws [P, 2] points (row, col in pixels) as outlined dots."""
  draw = ImageDraw.Draw(canvas)
  for (row, col), color in zip(points, colors):
    box = [col - radius, row - radius, col + radius, row + radius]
    draw.ellipse(box, fill=tuple(int(c) for c in color), outline=(0, 0, 0))

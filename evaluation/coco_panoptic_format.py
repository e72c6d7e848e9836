"""COCO panoptic files: RGB-id PNGs plus a JSON with `segments_info`.

A panoptic PNG stores a segment id per pixel as `id = R + 256 G + 256^2 B`
(0 = void). The JSON holds one annotation per image: `image_id`,
`file_name` and `segments_info`, a list of {id, category_id (the dataset's
own category id), iscrowd, area, bbox [x, y, width, height]}. This is the
format of COCO's ground truth, of panopticapi's `pq_compute` and of the
test-dev server (zip the JSON and the PNG folder).

`CocoPanopticWriter` turns `semantic * label_divisor + instance` maps into
such files. Segment ids are `category_id * label_divisor + instance`, so a
file is readable by eye and ids never collide within an image.
"""

import io
import json
import os
from typing import Optional, Union

import numpy as np
from PIL import Image

from cmt import atomic_files
from cmt import file_io
from cmt.data import dataset_info as dataset_info_lib
from cmt.data import panoptic_label

# The names of a prediction folder's files (`save_predictions`, `cmt-predict`):
# <folder>/panoptic.json and <folder>/panoptic/<image_name>.png.
PANOPTIC_JSON = 'panoptic.json'
PNG_FOLDER = 'panoptic'


def read_segment_ids(path: str) -> np.ndarray:
  """Reads a panoptic PNG as [H, W] segment ids; ValueError naming `path`."""
  try:
    with Image.open(io.BytesIO(file_io.read_bytes(path))) as image:
      if image.mode != 'RGB':
        image = image.convert('RGB')
      # RGB padded to 4 bytes is one little-endian word per pixel: R + 256 G
      # + 256^2 B once the padding byte is masked off (faster than 3 casts).
      words = np.frombuffer(image.tobytes('raw', 'RGBX'), dtype='<u4')
      ids = (words & 0xFFFFFF).view(np.int32)
      return ids.reshape(image.height, image.width)
  except FileNotFoundError:
    raise ValueError(f'{path}: panoptic PNG not found') from None
  except Exception as error:  # PIL raises many types for corrupt files.
    raise ValueError(f'{path}: unreadable panoptic PNG: {error}') from None


def segments_of_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                              np.ndarray]:
  """Nonzero segment ids of a map with their areas and [x, y, w, h] boxes."""
  height, width = ids.shape
  flat = ids.reshape(-1)
  if flat.size and flat.max() < 4 * flat.size:
    # Small ids (the writer's category * divisor + instance): count directly.
    counts = np.bincount(flat)
    values = np.flatnonzero(counts)
    lookup = np.zeros(len(counts), np.int64)
    lookup[values] = np.arange(len(values))
    inverse, areas = lookup[flat], counts[values]
  else:
    values, inverse, areas = np.unique(flat, return_inverse=True,
                                       return_counts=True)
  count = len(values)
  # Which rows / columns each segment touches -> its extent.
  segment_rows = inverse.reshape(height, width)
  in_row = np.zeros((count, height), bool)
  in_col = np.zeros((count, width), bool)
  in_row[segment_rows, np.arange(height)[:, None]] = True
  in_col[segment_rows, np.arange(width)[None, :]] = True
  y_min = in_row.argmax(1)
  y_max = height - 1 - in_row[:, ::-1].argmax(1)
  x_min = in_col.argmax(1)
  x_max = width - 1 - in_col[:, ::-1].argmax(1)
  boxes = np.stack([x_min, y_min, x_max - x_min + 1, y_max - y_min + 1], -1)
  keep = values != 0
  return values[keep], areas[keep], boxes[keep]


def default_image_id(image_name: str) -> Union[int, str]:
  """COCO image ids are ints; '000000142238' -> 142238, other names stay."""
  return int(image_name) if image_name.isdigit() else image_name


class CocoPanopticWriter:
  """Writes panoptic label maps as COCO panoptic PNGs and one JSON, at local
  paths or URLs (`cmt.atomic_files`).

  Files: `<png_folder>/<image_name>.png` at once, `json_path` on `write_json`
  (which may be called again after more images; it rewrites the file).
  """

  def __init__(self, json_path: str, png_folder: str,
               dataset_info: dataset_info_lib.DatasetInfo):
    self.json_path = json_path
    self.png_folder = png_folder
    self.dataset_info = dataset_info
    self.annotations: list[dict] = []
    self.images: list[dict] = []
    largest = (max(c.dataset_id for c in dataset_info.categories) *
               dataset_info.label_divisor + dataset_info.label_divisor - 1)
    if largest > panoptic_label.MAX_SEGMENT_ID:
      raise ValueError(f'{dataset_info.name}: segment ids up to {largest} do '
                       'not fit a 24-bit panoptic PNG')

  def add(self, image_name: str, panoptic: np.ndarray,
          image_id: Optional[Union[int, str]] = None) -> dict:
    """Writes one image; `panoptic` is [H, W] semantic * divisor + instance.

    Class 0 is void (written as id 0). Returns the JSON annotation.
    """
    info = self.dataset_info
    panoptic = np.asarray(panoptic).astype(np.int64)
    if panoptic.ndim != 2:
      raise ValueError(f'{image_name}: panoptic map must be [H, W], got '
                       f'shape {panoptic.shape}')
    semantic = panoptic // info.label_divisor
    instance = panoptic % info.label_divisor
    if panoptic.min(initial=0) < 0 or semantic.max(initial=0) > \
        info.num_classes:
      raise ValueError(f'{image_name}: panoptic labels must be semantic * '
                       f'{info.label_divisor} + instance with semantic in '
                       f'0..{info.num_classes}')
    category_of_class = np.array(info.dataset_ids, np.int64)
    ids = np.where(semantic == 0, 0,
                   category_of_class[semantic] * info.label_divisor + instance)
    values, areas, boxes = segments_of_ids(ids)
    file_name = image_name + '.png'
    with atomic_files.open_atomic(os.path.join(self.png_folder, file_name),
                                  'wb') as f:
      Image.fromarray(panoptic_label.id_to_rgb(ids)).save(f, format='PNG')
    image_id = default_image_id(image_name) if image_id is None else image_id
    annotation = {
        'image_id': image_id,
        'file_name': file_name,
        'segments_info': [
            {'id': int(v), 'category_id': int(v // info.label_divisor),
             'iscrowd': 0, 'area': int(a), 'bbox': [int(b) for b in box]}
            for v, a, box in zip(values, areas, boxes)],
    }
    self.annotations.append(annotation)
    self.images.append({'id': image_id, 'file_name': image_name + '.jpg',
                        'height': int(ids.shape[0]),
                        'width': int(ids.shape[1])})
    return annotation

  def merge(self, other: 'CocoPanopticWriter'):
    """Takes the annotations another writer (another replica) collected."""
    self.annotations.extend(other.annotations)
    self.images.extend(other.images)

  def write_json(self):
    """Writes (or rewrites) the JSON of every image added so far; it
    appears whole or not at all (`atomic_files`)."""
    content = {'images': self.images, 'annotations': self.annotations,
               'categories': self.dataset_info.categories_json()}
    with atomic_files.open_atomic(self.json_path) as f:
      f.write(json.dumps(content))

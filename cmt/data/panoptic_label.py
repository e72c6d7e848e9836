"""COCO panoptic annotations -> the `semantic * 256 + instance` label map.

A COCO panoptic annotation is an RGB PNG whose pixel colour encodes a
segment id, `id = R + 256 G + 256^2 B` (0 = unlabelled), plus a JSON entry
`segments_info` giving, per segment id, its `category_id`, `iscrowd` and
`area`. We convert it into one int32 label map, exactly as DeepLab2's
`build_coco_data.py` does with `treat_crowd_as_ignore=False`:

    label = semantic * label_divisor + instance        (label_divisor = 256)

* `semantic` is the contiguous class id 1..C of the segment's category
  (`DatasetInfo.to_class_id`), 0 (void) where the PNG is 0.
* Stuff segments have `instance = 0`.
* Non-crowd thing segments are numbered per class in the order of
  `segments_info`: `instance = 1, 2, ...` (at most label_divisor - 1 per
  class and image).
* Crowd regions (`iscrowd = 1`, things only) keep their class and get
  `instance = 0`. A thing pixel with instance 0 therefore means crowd: the
  input pipeline reads it as `GT_CROWD` and gives it no mask and zero weight,
  as DeepLab2's `get_semantic_and_panoptic_label` does. (DeepLab2's default
  `treat_crowd_as_ignore=True` writes crowd as void instead; such TFRecords
  read fine too, their crowd regions simply become void.)

Every inconsistency raises `DataError` naming the file at fault.
"""

import dataclasses
import io
from typing import Sequence

import numpy as np
from PIL import Image

from cmt.data import dataset_info as dataset_info_lib
from cmt.data import errors
from cmt.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class Segment:
  """One segment of a converted image: its label value and its origin."""
  segment_id: int        # id in the panoptic PNG / JSON
  class_id: int          # contiguous class id 1..C
  instance: int          # 0 for stuff and crowd
  is_crowd: bool
  area: int


def read_rgb(path: str, data: bytes, what: str) -> Image.Image:
  """Decodes image bytes with PIL; DataError naming `path` if unreadable."""
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except Exception as error:  # PIL raises many types for corrupt files.
    raise DataError(f'{path}: {what} is unreadable: {error}') from None
  return image


# The largest segment id a COCO panoptic PNG can hold (three bytes).
MAX_SEGMENT_ID = 256 ** 3 - 1


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
  """[H, W, 3] COCO panoptic colours -> [H, W] int64 segment ids
  (R + 256 G + 256^2 B)."""
  rgb = np.asarray(rgb).astype(np.int64)
  return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
  """[H, W] segment ids -> [H, W, 3] uint8 colours, inverse of rgb_to_id."""
  ids = np.asarray(ids)
  if ids.min(initial=0) < 0 or ids.max(initial=0) > MAX_SEGMENT_ID:
    raise ValueError(f'segment ids must lie in 0..{MAX_SEGMENT_ID}')
  # The low three bytes of a little-endian word are R, G, B.
  words = np.ascontiguousarray(ids, dtype='<u4')
  return words.view(np.uint8).reshape(ids.shape + (4,))[..., :3]


def _check_ids_agree(area_of: dict, ids_in_json: list, png_path: str,
                     json_path: str):
  """The PNG's nonzero segment ids and the JSON's are the same, once each."""
  duplicates = sorted({i for i in ids_in_json if ids_in_json.count(i) > 1})
  if duplicates:
    raise DataError(f'{json_path}: segments {duplicates} of {png_path} are '
                    'listed twice')
  missing_in_json = sorted(set(area_of) - set(ids_in_json) - {0})
  if missing_in_json:
    raise DataError(f'{png_path}: segment ids {missing_in_json} in the PNG are '
                    f'not in the segments_info of {json_path}')
  missing_in_png = sorted(set(ids_in_json) - set(area_of))
  if missing_in_png:
    raise DataError(f'{json_path}: segment ids {missing_in_png} of '
                    f'{png_path} do not occur in the PNG')


def panoptic_label_from_coco(
    segment_map: np.ndarray, segments_info: Sequence[dict],
    info: dataset_info_lib.DatasetInfo, png_path: str, json_path: str
) -> tuple[np.ndarray, list[Segment]]:
  """Builds the int32 label map (module docstring) and its segment list.

  Args:
    segment_map: [H, W] int segment ids decoded from the panoptic PNG.
    segments_info: the annotation's `segments_info` list.
    info: the dataset description mapping category ids to class ids.
    png_path, json_path: named in errors.

  Raises:
    DataError: a PNG id missing from the JSON or the reverse, an unknown
      category, a crowd stuff segment, a wrong area, or too many instances.
  """
  divisor = info.label_divisor
  ids_in_png, inverse, areas = np.unique(
      segment_map.reshape(-1), return_inverse=True, return_counts=True)
  area_of = dict(zip(ids_in_png.tolist(), areas.tolist()))
  _check_ids_agree(area_of, [int(s['id']) for s in segments_info], png_path,
                   json_path)
  value_of = {0: 0}
  segments, instances_per_class = [], {}
  for segment in segments_info:
    segment_id = int(segment['id'])
    category = segment.get('category_id')
    try:
      class_id = info.to_class_id(int(category))
    except (KeyError, TypeError, ValueError):
      raise DataError(f'{json_path}: segment {segment_id} of {png_path} has '
                      f'category_id {category!r}, not a category of '
                      f'{info.name}') from None
    is_crowd = bool(segment.get('iscrowd', 0))
    area = area_of[segment_id]
    if 'area' in segment and int(segment['area']) != area:
      raise DataError(f'{json_path}: segment {segment_id} of {png_path} says '
                      f'area {segment["area"]} but the PNG has {area} pixels')
    if is_crowd and not info.is_thing(class_id):
      raise DataError(f'{json_path}: segment {segment_id} of {png_path} is a '
                      f'crowd of stuff class {info.class_names[class_id]!r}; '
                      'only things can be crowd')
    instance = 0
    if info.is_thing(class_id) and not is_crowd:
      instance = instances_per_class.get(class_id, 0) + 1
      if instance >= divisor:
        raise DataError(f'{png_path}: more than {divisor - 1} instances of '
                        f'{info.class_names[class_id]!r}; the label divisor '
                        f'{divisor} cannot encode them')
      instances_per_class[class_id] = instance
    value_of[segment_id] = class_id * divisor + instance
    segments.append(Segment(segment_id, class_id, instance, is_crowd, area))

  values = np.array([value_of[i] for i in ids_in_png.tolist()], np.int32)
  label = values[inverse].reshape(segment_map.shape)
  return label, segments


def convert_annotation(image_path: str, image_bytes: bytes, png_path: str,
                       png_bytes: bytes, segments_info: Sequence[dict],
                       info: dataset_info_lib.DatasetInfo, json_path: str
                       ) -> tuple[bytes, str, np.ndarray, list[Segment]]:
  """Validates one image + annotation; returns (RGB image bytes, format,
  label, segments).

  Grey or RGBA images are re-encoded as RGB (as DeepLab2 does), so every
  stored image decodes to 3 channels.
  """
  image = read_rgb(image_path, image_bytes, 'the image')
  if image.format not in ('JPEG', 'PNG'):
    raise DataError(f'{image_path}: image format {image.format} is not JPEG '
                    'or PNG')
  image_format = 'jpeg' if image.format == 'JPEG' else 'png'
  png = read_rgb(png_path, png_bytes, 'the panoptic PNG')
  if png.mode not in ('RGB', 'RGBA'):
    raise DataError(f'{png_path}: panoptic PNG must be RGB, not mode '
                    f'{png.mode}')
  if png.size != image.size:
    raise DataError(f'{png_path}: panoptic PNG is {png.size[0]}x'
                    f'{png.size[1]} but image {image_path} is '
                    f'{image.size[0]}x{image.size[1]} (width x height)')
  if image.mode != 'RGB':
    buffer = io.BytesIO()
    image.convert('RGB').save(buffer, format=image.format)
    image_bytes = buffer.getvalue()
  segment_map = rgb_to_id(np.asarray(png.convert('RGB')))
  label, segments = panoptic_label_from_coco(segment_map, segments_info, info,
                                             png_path, json_path)
  return image_bytes, image_format, label, segments


@dataclasses.dataclass(frozen=True)
class ConversionTask:
  """One image to convert: where its files are and its JSON annotation."""
  name: str              # file name without extension, stored in the record
  image_path: str
  png_path: str
  segments_info: tuple   # of dicts, from the panoptic JSON
  json_path: str


@dataclasses.dataclass(frozen=True)
class ConvertedImage:
  name: str
  image_bytes: bytes
  image_format: str
  label: np.ndarray
  segments: list


def convert_task(task: ConversionTask,
                 info: dataset_info_lib.DatasetInfo) -> ConvertedImage:
  """Reads and converts one image's files (no TensorFlow: runs in workers)."""
  image_bytes = errors.read_local_file(task.image_path, 'the image')
  png_bytes = errors.read_local_file(task.png_path, 'the panoptic PNG')
  image_bytes, image_format, label, segments = convert_annotation(
      task.image_path, image_bytes, task.png_path, png_bytes,
      task.segments_info, info, task.json_path)
  return ConvertedImage(task.name, image_bytes, image_format, label, segments)

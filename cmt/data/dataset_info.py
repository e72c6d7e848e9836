"""Dataset descriptions: classes, things/stuff, label encoding.

A description is built in for COCO panoptic (133 categories: 80 things, 53
stuff) and read from a COCO-panoptic-style categories JSON for a custom
dataset. Dataset category ids (COCO: 1-200 with gaps) map to contiguous
class ids 1..C; 0 is void. Labels are encoded as semantic * label_divisor +
instance.
"""

import dataclasses
import functools
import json
from typing import Optional, Sequence

from cmt import file_io

LABEL_DIVISOR = 256
VOID = 0


@dataclasses.dataclass(frozen=True)
class Category:
  dataset_id: int
  name: str
  is_thing: bool
  color: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """A panoptic dataset's classes; index i of `categories` is class i + 1."""
  name: str
  categories: tuple[Category, ...]
  label_divisor: int = LABEL_DIVISOR

  @property
  def num_classes(self) -> int:
    """C, the number of classes without void."""
    return len(self.categories)

  def is_thing(self, class_id: int) -> bool:
    return class_id != VOID and self.categories[class_id - 1].is_thing

  @property
  def thing_mask(self) -> tuple[bool, ...]:
    """Per contiguous class id 0..C (void first), whether it is a thing."""
    return (False,) + tuple(c.is_thing for c in self.categories)

  @property
  def class_names(self) -> tuple[str, ...]:
    return ('void',) + tuple(c.name for c in self.categories)

  @property
  def dataset_ids(self) -> tuple[int, ...]:
    """Per contiguous class id 0..C, the dataset's own category id (void 0)."""
    return (VOID,) + tuple(c.dataset_id for c in self.categories)

  @property
  def class_colors(self) -> tuple[tuple[int, int, int], ...]:
    """Per contiguous class id 0..C, its RGB colour (void black): the one
    colour table of exports, predictions, figures and eval summaries."""
    return ((0, 0, 0),) + tuple(c.color for c in self.categories)

  def to_class_id(self, dataset_id: int) -> int:
    """The dataset's category id -> contiguous class id; KeyError if unknown."""
    return self._class_ids[dataset_id]

  @functools.cached_property
  def _class_ids(self):
    return {c.dataset_id: i + 1 for i, c in enumerate(self.categories)}

  def categories_json(self) -> list[dict]:
    """The categories in COCO panoptic JSON form."""
    return [{'id': c.dataset_id, 'name': c.name, 'isthing': int(c.is_thing),
             'color': list(c.color)} for c in self.categories]


def from_categories(name: str, categories: Sequence[dict],
                    source: str = '<categories>') -> DatasetInfo:
  """Builds a description from COCO-style category dicts (id, name, isthing)."""
  parsed, seen = [], set()
  for index, category in enumerate(categories):
    for key in ('id', 'name', 'isthing'):
      if key not in category:
        raise ValueError(f'{source}: category #{index} has no {key!r}: '
                         f'{category}')
    dataset_id = int(category['id'])
    if dataset_id in seen:
      raise ValueError(f'{source}: category id {dataset_id} appears twice')
    if dataset_id == VOID:
      raise ValueError(f'{source}: category id 0 is reserved for void')
    seen.add(dataset_id)
    color = tuple(int(v) for v in category.get('color', _default_color(index)))
    parsed.append(Category(dataset_id, str(category['name']),
                           bool(category['isthing']), color))
  if not parsed:
    raise ValueError(f'{source}: no categories')
  parsed.sort(key=lambda c: c.dataset_id)
  return DatasetInfo(name=name, categories=tuple(parsed))


def from_categories_json(path: str, name: Optional[str] = None) -> DatasetInfo:
  """Reads a categories file (local or a URL, `cmt.file_io`): a list, or a
  dict with a 'categories' list."""
  try:
    data = json.loads(file_io.read_text(path))
  except UnicodeDecodeError as error:
    raise ValueError(f'{path}: not valid JSON: {error}') from None
  except OSError as error:
    raise ValueError(f'{path}: cannot read categories: {error.strerror}') from None
  except json.JSONDecodeError as error:
    raise ValueError(f'{path}: not valid JSON: {error}') from None
  if isinstance(data, dict):
    if 'categories' not in data:
      raise ValueError(f'{path}: expected a list of categories or a dict with '
                       '"categories"')
    data = data['categories']
  return from_categories(name or path, data, source=path)


def _default_color(index: int) -> tuple[int, int, int]:
  # Spread hues deterministically for datasets that give no colours.
  return ((index * 97) % 256, (index * 57 + 80) % 256, (index * 31 + 160) % 256)


# COCO panoptic 2017: (category id, name, isthing, colour), as in the official
# panoptic_coco_categories.json.
_COCO_PANOPTIC = (
    (1, 'person', True, (220, 20, 60)),
    (2, 'bicycle', True, (119, 11, 32)),
    (3, 'car', True, (0, 0, 142)),
    (4, 'motorcycle', True, (0, 0, 230)),
    (5, 'airplane', True, (106, 0, 228)),
    (6, 'bus', True, (0, 60, 100)),
    (7, 'train', True, (0, 80, 100)),
    (8, 'truck', True, (0, 0, 70)),
    (9, 'boat', True, (0, 0, 192)),
    (10, 'traffic light', True, (250, 170, 30)),
    (11, 'fire hydrant', True, (100, 170, 30)),
    (13, 'stop sign', True, (220, 220, 0)),
    (14, 'parking meter', True, (175, 116, 175)),
    (15, 'bench', True, (250, 0, 30)),
    (16, 'bird', True, (165, 42, 42)),
    (17, 'cat', True, (255, 77, 255)),
    (18, 'dog', True, (0, 226, 252)),
    (19, 'horse', True, (182, 182, 255)),
    (20, 'sheep', True, (0, 82, 0)),
    (21, 'cow', True, (120, 166, 157)),
    (22, 'elephant', True, (110, 76, 0)),
    (23, 'bear', True, (174, 57, 255)),
    (24, 'zebra', True, (199, 100, 0)),
    (25, 'giraffe', True, (72, 0, 118)),
    (27, 'backpack', True, (255, 179, 240)),
    (28, 'umbrella', True, (0, 125, 92)),
    (31, 'handbag', True, (209, 0, 151)),
    (32, 'tie', True, (188, 208, 182)),
    (33, 'suitcase', True, (0, 220, 176)),
    (34, 'frisbee', True, (255, 99, 164)),
    (35, 'skis', True, (92, 0, 73)),
    (36, 'snowboard', True, (133, 129, 255)),
    (37, 'sports ball', True, (78, 180, 255)),
    (38, 'kite', True, (0, 228, 0)),
    (39, 'baseball bat', True, (174, 255, 243)),
    (40, 'baseball glove', True, (45, 89, 255)),
    (41, 'skateboard', True, (134, 134, 103)),
    (42, 'surfboard', True, (145, 148, 174)),
    (43, 'tennis racket', True, (255, 208, 186)),
    (44, 'bottle', True, (197, 226, 255)),
    (46, 'wine glass', True, (171, 134, 1)),
    (47, 'cup', True, (109, 63, 54)),
    (48, 'fork', True, (207, 138, 255)),
    (49, 'knife', True, (151, 0, 95)),
    (50, 'spoon', True, (9, 80, 61)),
    (51, 'bowl', True, (84, 105, 51)),
    (52, 'banana', True, (74, 65, 105)),
    (53, 'apple', True, (166, 196, 102)),
    (54, 'sandwich', True, (208, 195, 210)),
    (55, 'orange', True, (255, 109, 65)),
    (56, 'broccoli', True, (0, 143, 149)),
    (57, 'carrot', True, (179, 0, 194)),
    (58, 'hot dog', True, (209, 99, 106)),
    (59, 'pizza', True, (5, 121, 0)),
    (60, 'donut', True, (227, 255, 205)),
    (61, 'cake', True, (147, 186, 208)),
    (62, 'chair', True, (153, 69, 1)),
    (63, 'couch', True, (3, 95, 161)),
    (64, 'potted plant', True, (163, 255, 0)),
    (65, 'bed', True, (119, 0, 170)),
    (67, 'dining table', True, (0, 182, 199)),
    (70, 'toilet', True, (0, 165, 120)),
    (72, 'tv', True, (183, 130, 88)),
    (73, 'laptop', True, (95, 32, 0)),
    (74, 'mouse', True, (130, 114, 135)),
    (75, 'remote', True, (110, 129, 133)),
    (76, 'keyboard', True, (166, 74, 118)),
    (77, 'cell phone', True, (219, 142, 185)),
    (78, 'microwave', True, (79, 210, 114)),
    (79, 'oven', True, (178, 90, 62)),
    (80, 'toaster', True, (65, 70, 15)),
    (81, 'sink', True, (127, 167, 115)),
    (82, 'refrigerator', True, (59, 105, 106)),
    (84, 'book', True, (142, 108, 45)),
    (85, 'clock', True, (196, 172, 0)),
    (86, 'vase', True, (95, 54, 80)),
    (87, 'scissors', True, (128, 76, 255)),
    (88, 'teddy bear', True, (201, 57, 1)),
    (89, 'hair drier', True, (246, 0, 122)),
    (90, 'toothbrush', True, (191, 162, 208)),
    (92, 'banner', False, (255, 255, 128)),
    (93, 'blanket', False, (147, 211, 203)),
    (95, 'bridge', False, (150, 100, 100)),
    (100, 'cardboard', False, (168, 171, 172)),
    (107, 'counter', False, (146, 112, 198)),
    (109, 'curtain', False, (210, 170, 100)),
    (112, 'door-stuff', False, (92, 136, 89)),
    (118, 'floor-wood', False, (218, 88, 184)),
    (119, 'flower', False, (241, 129, 0)),
    (122, 'fruit', False, (217, 17, 255)),
    (125, 'gravel', False, (124, 74, 181)),
    (128, 'house', False, (70, 70, 70)),
    (130, 'light', False, (255, 228, 255)),
    (133, 'mirror-stuff', False, (154, 208, 0)),
    (138, 'net', False, (193, 0, 92)),
    (141, 'pillow', False, (76, 91, 113)),
    (144, 'platform', False, (255, 180, 195)),
    (145, 'playingfield', False, (106, 154, 176)),
    (147, 'railroad', False, (230, 150, 140)),
    (148, 'river', False, (60, 143, 255)),
    (149, 'road', False, (128, 64, 128)),
    (151, 'roof', False, (92, 82, 55)),
    (154, 'sand', False, (254, 212, 124)),
    (155, 'sea', False, (73, 77, 174)),
    (156, 'shelf', False, (255, 160, 98)),
    (159, 'snow', False, (255, 255, 255)),
    (161, 'stairs', False, (104, 84, 109)),
    (166, 'tent', False, (169, 164, 131)),
    (168, 'towel', False, (225, 199, 255)),
    (171, 'wall-brick', False, (137, 54, 74)),
    (175, 'wall-stone', False, (135, 158, 223)),
    (176, 'wall-tile', False, (7, 246, 231)),
    (177, 'wall-wood', False, (107, 255, 200)),
    (178, 'water-other', False, (58, 41, 149)),
    (180, 'window-blind', False, (183, 121, 142)),
    (181, 'window-other', False, (255, 73, 97)),
    (184, 'tree-merged', False, (107, 142, 35)),
    (185, 'fence-merged', False, (190, 153, 153)),
    (186, 'ceiling-merged', False, (146, 139, 141)),
    (187, 'sky-other-merged', False, (70, 130, 180)),
    (188, 'cabinet-merged', False, (134, 199, 156)),
    (189, 'table-merged', False, (209, 226, 140)),
    (190, 'floor-other-merged', False, (96, 36, 108)),
    (191, 'pavement-merged', False, (96, 96, 96)),
    (192, 'mountain-merged', False, (64, 170, 64)),
    (193, 'grass-merged', False, (152, 251, 152)),
    (194, 'dirt-merged', False, (208, 229, 228)),
    (195, 'paper-merged', False, (206, 186, 171)),
    (196, 'food-other-merged', False, (152, 161, 64)),
    (197, 'building-other-merged', False, (116, 112, 0)),
    (198, 'rock-merged', False, (0, 114, 143)),
    (199, 'wall-other-merged', False, (102, 102, 156)),
    (200, 'rug-merged', False, (250, 141, 255)),
)

COCO_PANOPTIC = from_categories(
    'coco_panoptic',
    [{'id': i, 'name': n, 'isthing': t, 'color': c}
     for i, n, t, c in _COCO_PANOPTIC])

BUILT_IN = {'coco_panoptic': COCO_PANOPTIC}


def get_dataset_info(dataset_options) -> DatasetInfo:
  """The description a `DatasetOptions` names (built-in or categories_json)."""
  if dataset_options.categories_json:
    return from_categories_json(dataset_options.categories_json)
  if dataset_options.dataset not in BUILT_IN:
    raise ValueError(f'unknown dataset {dataset_options.dataset!r}; built in: '
                     f'{sorted(BUILT_IN)}, or set categories_json')
  return BUILT_IN[dataset_options.dataset]

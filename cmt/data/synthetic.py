"""`cmt-synthetic-data`: a procedurally generated panoptic dataset.

    cmt-synthetic-data --output_dir=O [--overwrite] [--num_train=200 --num_val=50
                       --image_size=129 --seed=0 --difficulty={demo,hard}]

Writes, in COCO panoptic format (the embedded default for the demo and the
tests):

    O/categories.json                 id, name, isthing, color per category
    O/panoptic_{train,val}.json       images, annotations (segments_info)
    O/images/{train,val}/*.jpg        the images (JPEG, quality 90)
    O/panoptic/{train,val}/*.png      RGB-id PNGs, id = R + 256 G + 256^2 B

so that, per split S,

    cmt-build-data --image_dir=O/images/S --panoptic_json=O/panoptic_S.json \
        --panoptic_dir=O/panoptic/S --categories_json=O/categories.json \
        --output_dir=D

converts it directly (shards named S-*).

Each image is a scene of three textured stuff classes (`sky` above a wavy
horizon; `grass` and `road` below it, split by a slanted border) and one to
four things drawn on top in random order, so later things occlude earlier
ones (a placement is retried if it would leave an earlier thing less than
half visible). The four thing classes differ in both shape and colour (red disc,
blue square, yellow triangle, purple cross), with colour jitter and shading,
so a small model can learn them. Everything is drawn from
`numpy.random.default_rng([seed, split, index])`: the same seed gives the
same bytes.

`--difficulty` picks how hard the scenes are (`Difficulty`, sizes given for
a 129x129 image and scaled with the image):

  demo  (default; `make demo`, the tests) 1-4 things of radius 9-20 px, at
        least half of each visible, faint texture noise.
  hard  (`cmt-ablate`) 3-8 things of radius 7-15 px; 40% of them
        are placed touching an earlier thing of the SAME class (instances
        that only their shape and a seam separate); up to 60% of a thing
        hidden; colour jitter +-35 and pixel noise of sigma 18 on things, 10
        on the whole image. Over 100 images (seed 0): 5.3 things per image
        (demo: 2.4), visible thing area median 294 px at 129x129 (10-90%:
        152-492), 161 px at 97x97 (75-280).
"""

import dataclasses
import json
import os
from typing import NamedTuple

import numpy as np
from PIL import Image

from cmt.data import panoptic_label

# (id, name, isthing, colour used for visualisation).
CATEGORIES = (
    (1, 'disc', 1, (220, 40, 40)),
    (2, 'square', 1, (40, 70, 220)),
    (3, 'triangle', 1, (240, 200, 30)),
    (4, 'cross', 1, (160, 50, 200)),
    (5, 'sky', 0, (150, 200, 240)),
    (6, 'grass', 0, (60, 150, 50)),
    (7, 'road', 0, (110, 105, 100)),
)
SKY, GRASS, ROAD = 5, 6, 7
_THING_COLOURS = {1: (215, 45, 40), 2: (40, 70, 215), 3: (235, 200, 35),
                  4: (150, 50, 195)}
_SPLITS = {'train': 0, 'val': 1}
_PLACEMENT_TRIES = 20


@dataclasses.dataclass(frozen=True)
class Difficulty:
  """How hard a scene is. The defaults are the demo dataset (`demo`): they
  draw exactly the random numbers the demo always drew, so its bytes do not
  change."""
  min_things: int = 1
  max_things: int = 4
  # Thing radius range in pixels of a 129x129 image (scaled with the size).
  thing_radius: tuple[float, float] = (9.0, 20.0)
  # A placement hiding more of an earlier thing than this is retried.
  max_hidden_fraction: float = 0.5
  # Chance that a thing (after the first) is a same-class copy touching an
  # earlier thing.
  touching_probability: float = 0.0
  colour_jitter: float = 20.0  # +- per channel, per thing
  thing_noise: float = 5.0  # sigma of the per-pixel noise on things
  image_noise: float = 0.0  # sigma of per-pixel RGB noise on the whole image


DIFFICULTIES = {
    'demo': Difficulty(),
    'hard': Difficulty(min_things=3, max_things=8, thing_radius=(7.0, 15.0),
                       max_hidden_fraction=0.6, touching_probability=0.4,
                       colour_jitter=35.0, thing_noise=18.0,
                       image_noise=10.0),
}


def categories_json() -> list[dict]:
  return [{'id': i, 'name': n, 'isthing': t, 'color': list(c)}
          for i, n, t, c in CATEGORIES]


def _stuff_layout(rng, height, width) -> np.ndarray:
  """[H, W] stuff category per pixel: sky / (grass | road)."""
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  horizon = (rng.uniform(0.25, 0.55) * height + rng.uniform(0.02, 0.08) *
             height * np.sin(xs / width * rng.uniform(2, 8) +
                             rng.uniform(0, 6.3)))
  border = rng.uniform(0.2, 0.8) * width + rng.uniform(-0.6, 0.6) * (
      ys - height)
  left, right = (GRASS, ROAD) if rng.uniform() < 0.5 else (ROAD, GRASS)
  if rng.uniform() < 0.25:  # sometimes only one ground class
    right = left
  layout = np.where(xs < border, left, right)
  return np.where(ys < horizon, SKY, layout).astype(np.int32)


def _stuff_texture(rng, category, height, width) -> np.ndarray:
  """[H, W, 3] float texture of a stuff class."""
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  noise = rng.normal(0, 1, (height, width, 1)).astype(np.float32)
  if category == SKY:  # smooth vertical gradient, faint noise
    t = (ys / height)[..., None]
    base = np.array([120, 170, 230]) * (1 - t) + np.array([200, 225, 245]) * t
    return base + 4 * noise
  if category == GRASS:  # green, strong noise and vertical blades
    blades = np.sin(xs * rng.uniform(1.5, 2.5))[..., None]
    return np.array([60, 140, 50]) + 25 * noise + 12 * blades
  # Road: grey with diagonal stripes.
  period = rng.uniform(8, 14)
  stripes = (((xs + ys) % period) < period / 3)[..., None]
  return np.array([105, 100, 95]) + 10 * noise + 45 * stripes


def _thing_mask(rng, category, height, width, center, radius) -> np.ndarray:
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  dy, dx = ys - center[0], xs - center[1]
  if category == 1:  # disc
    return dy * dy + dx * dx <= radius * radius
  if category == 2:  # square, slightly rotated
    angle = rng.uniform(-0.3, 0.3)
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    half = radius * 0.85
    return (np.abs(u) <= half) & (np.abs(v) <= half)
  if category == 3:  # upward triangle
    top, bottom = center[0] - radius, center[0] + radius * 0.8
    half_width = (ys - top) / (bottom - top) * radius * 1.1
    return (ys >= top) & (ys <= bottom) & (np.abs(dx) <= half_width)
  # Cross: two bars.
  thickness = radius * 0.38
  return (((np.abs(dx) <= radius) & (np.abs(dy) <= thickness)) |
          ((np.abs(dy) <= radius) & (np.abs(dx) <= thickness)))


def _thing_texture(rng, category, mask_shape,
                   difficulty: Difficulty) -> np.ndarray:
  height, width = mask_shape
  jitter = rng.uniform(-difficulty.colour_jitter, difficulty.colour_jitter, 3)
  ys = np.mgrid[0:height, 0:width][0].astype(np.float32)
  shade = (rng.uniform(-0.15, 0.15) * (ys / height - 0.5))[..., None]
  base = np.array(_THING_COLOURS[category]) + jitter
  noise = rng.normal(0, difficulty.thing_noise, (height, width, 1))
  return base * (1 + shade) + noise


class Scene(NamedTuple):
  image: np.ndarray        # uint8 RGB [H, W, 3]
  ids: np.ndarray          # int segment ids [H, W]
  segments: list           # COCO segments_info
  thing_areas: dict        # thing segment id -> area before occlusion


def _thing_center(rng, things, touching, radius, height, width):
  """A random center, or (`touching`: an earlier thing (segment id,
  category, area, center, radius)) one at a distance where the two shapes
  meet."""
  if touching is None:
    return (rng.uniform(radius, height - radius),
            rng.uniform(radius, width - radius))
  _, _, _, (y, x), other_radius = things[touching]
  angle = rng.uniform(0, 2 * np.pi)
  distance = (radius + other_radius) * rng.uniform(0.8, 0.95)
  return (float(np.clip(y + distance * np.sin(angle), radius,
                        height - radius)),
          float(np.clip(x + distance * np.cos(angle), radius,
                        width - radius)))


def generate_scene(rng, height: int, width: int,
                   difficulty: Difficulty = Difficulty()) -> Scene:
  """One image with its panoptic annotation."""
  stuff = _stuff_layout(rng, height, width)
  image = np.zeros((height, width, 3), np.float32)
  for category in (SKY, GRASS, ROAD):
    image = np.where((stuff == category)[..., None],
                     _stuff_texture(rng, category, height, width), image)
  # Segment id = category * 1000 + running index (unique in the image).
  ids = stuff * 1000
  scale = min(height, width) / 129
  # (segment id, category, full area, center, radius)
  things = []
  count = rng.integers(difficulty.min_things, difficulty.max_things + 1)
  for index in range(count):
    touching = None
    if (difficulty.touching_probability > 0 and things and
        rng.uniform() < difficulty.touching_probability):
      touching = int(rng.integers(len(things)))
      category = things[touching][1]
    else:
      category = int(rng.integers(1, 5))
    for _ in range(_PLACEMENT_TRIES):
      radius = rng.uniform(*difficulty.thing_radius) * scale
      center = _thing_center(rng, things, touching, radius, height, width)
      mask = _thing_mask(rng, category, height, width, center, radius)
      # Reject a placement that would hide too much of an earlier thing.
      if all(np.sum((ids == sid) & ~mask) >=
             (1 - difficulty.max_hidden_fraction) * area
             for sid, _, area, _, _ in things):
        break
    else:
      continue
    segment_id = category * 1000 + index + 1
    ids = np.where(mask, segment_id, ids)
    image = np.where(mask[..., None],
                     _thing_texture(rng, category, (height, width),
                                    difficulty), image)
    things.append((segment_id, category, int(mask.sum()), center, radius))
  if difficulty.image_noise > 0:
    image = image + rng.normal(0, difficulty.image_noise, image.shape)

  segments = []
  for segment_id in np.unique(ids).tolist():
    ys, xs = np.nonzero(ids == segment_id)
    segments.append({
        'id': int(segment_id), 'category_id': int(segment_id // 1000),
        'iscrowd': 0, 'area': int(ys.size),
        'bbox': [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                 int(ys.max() - ys.min() + 1)]})
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  return Scene(image, ids, segments,
               {segment_id: area for segment_id, _, area, _, _ in things})


def write_split(output_dir: str, split: str, num_images: int,
                image_size, seed: int,
                difficulty: Difficulty = Difficulty()) -> str:
  """Writes one split; returns the path of its panoptic JSON.

  `image_size`: (height, width) of every image, or a list of them taken in
  turn (image i gets entry i mod len).
  """
  sizes = image_size if isinstance(image_size, list) else [image_size]
  image_dir = os.path.join(output_dir, 'images', split)
  png_dir = os.path.join(output_dir, 'panoptic', split)
  os.makedirs(image_dir, exist_ok=True)
  os.makedirs(png_dir, exist_ok=True)
  images, annotations = [], []
  for index in range(num_images):
    height, width = sizes[index % len(sizes)]
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    image, ids, segments, _ = generate_scene(rng, height, width,
                                             difficulty)
    name = f'{split}_{index:06d}'
    Image.fromarray(image).save(os.path.join(image_dir, name + '.jpg'),
                                quality=90)
    Image.fromarray(panoptic_label.id_to_rgb(ids)).save(os.path.join(png_dir, name + '.png'))
    images.append({'id': index, 'file_name': name + '.jpg',
                   'height': height, 'width': width})
    annotations.append({'image_id': index, 'file_name': name + '.png',
                        'segments_info': segments})
  json_path = os.path.join(output_dir, f'panoptic_{split}.json')
  description = f'cmt synthetic panoptic, seed {seed}'
  if difficulty != Difficulty():
    description += f', {difficulty}'
  with open(json_path, 'w', encoding='utf-8') as f:
    json.dump({'info': {'description': description},
               'images': images, 'annotations': annotations,
               'categories': categories_json()}, f)
  return json_path


def write_dataset(output_dir: str, num_train: int = 200, num_val: int = 50,
                  image_size=(129, 129), seed: int = 0,
                  difficulty: Difficulty = Difficulty()) -> dict[str, str]:
  """Writes the whole dataset (`image_size` as for `write_split`); returns
  the paths a converter needs."""
  os.makedirs(output_dir, exist_ok=True)
  categories_path = os.path.join(output_dir, 'categories.json')
  with open(categories_path, 'w', encoding='utf-8') as f:
    json.dump(categories_json(), f, indent=1)
  paths = {'categories_json': categories_path}
  for split, count in (('train', num_train), ('val', num_val)):
    if count:
      paths[f'{split}_json'] = write_split(output_dir, split, count,
                                           image_size, seed, difficulty)
  return paths


def build_data_args(output_dir: str, split: str, tfrecord_dir: str
                    ) -> list[str]:
  """The `cmt-build-data` arguments that convert one written split."""
  return [f'--image_dir={os.path.join(output_dir, "images", split)}',
          f'--panoptic_json={os.path.join(output_dir, f"panoptic_{split}.json")}',
          f'--panoptic_dir={os.path.join(output_dir, "panoptic", split)}',
          f'--categories_json={os.path.join(output_dir, "categories.json")}',
          f'--output_dir={tfrecord_dir}', f'--split_name={split}']

"""Fig. 1's layout for `cmt-ablate`: the baseline and a CMT row at the last
step, on the first held-out image.

For each model, two rows of panels: the image, then the softmax attention A
(Eq. 3, the last layer's `CROSS_ATTENTION`) of a few centers; the chosen
ground-truth segments, then the clustering assignment Z (Eq. 6,
`CLUSTER_ASSIGNMENT`) of the same centers, or, for a row without the
clustering update, its final mask assignment Y (softmax_N of the mask
logits, Eq. 4), the only pixel-to-center assignment it has. The centers are
the ones matched to the image's largest ground-truth things and its largest
stuff segment (`cmt.ablation.attention_stats`); each map is normalised to
its maximum. Reads the material `run_one` saved (`<run>_fig1.npz`); no
TensorFlow.
"""

from typing import Sequence

import numpy as np

from cmt import visualize

NUM_THINGS = 3


def load_material(path: str) -> dict:
  with np.load(path) as data:
    return {key: data[key] for key in data.files}


def chosen_segments(material: dict, num_things: int = NUM_THINGS
                    ) -> list[tuple[str, int]]:
  """(kind, segment id) of the largest things and the largest stuff
  segment of the image."""
  ids = material['ids']
  chosen = []
  for kind, count in (('things', num_things), ('stuff', 1)):
    segments = material[f'{kind}_segments'].tolist()
    segments.sort(key=lambda s: -int(np.sum(ids == s)))
    chosen += [(kind, s) for s in segments[:count]]
  return chosen


def matched_center(material: dict, kind: str, segment: int) -> int:
  segments = material[f'{kind}_segments'].tolist()
  return int(material[f'{kind}_centers'][segments.index(segment)])


def segments_panel(image: np.ndarray, ids: np.ndarray,
                   segments: Sequence[int]):
  """The image with the chosen segments in distinct colours."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from cmt.vis import colors as colors_lib  # pylint: disable=g-import-not-at-top
  from cmt.vis import drawing  # pylint: disable=g-import-not-at-top
  out = image
  for color, segment in zip(colors_lib.distinct_colors(len(segments)),
                            segments):
    out = drawing.blend(out, np.broadcast_to(color, image.shape), 0.6,
                        ids == segment)
  return Image.fromarray(out)


def model_panels(material: dict, label: str,
                 chosen: Sequence[tuple[str, int]]) -> tuple[list, list]:
  """The two rows of one model: (panels, titles)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image, crop = material['image'], material['crop'].tolist()
  second = 'assignment' if 'map_assignment' in material else 'mask'
  symbol = 'Z' if second == 'assignment' else 'Y'
  top = [Image.fromarray(image)]
  bottom = [segments_panel(image, material['ids'], [s for _, s in chosen])]
  top_titles, bottom_titles = [f'{label}'], ['segments']
  for kind, segment in chosen:
    center = matched_center(material, kind, segment)
    blank = Image.new('RGB', image.shape[1::-1])
    if center < 0:
      top.append(blank)
      bottom.append(blank)
    else:
      top.append(visualize.heat_panel(
          image, material['map_attention'][center], crop))
      bottom.append(visualize.heat_panel(
          image, material[f'map_{second}'][center], crop))
    top_titles.append(f'A, center {center}')
    bottom_titles.append(f'{symbol}, center {center}')
  return top + bottom, top_titles + bottom_titles


def figure(materials: Sequence[tuple[str, dict]]):
  """[(label, material)] -> one Pillow image, two rows per model; the
  segments are chosen on the first material's image (all share it)."""
  from cmt.vis import layout  # pylint: disable=g-import-not-at-top
  chosen = chosen_segments(materials[0][1])
  panels, titles = [], []
  for label, material in materials:
    more_panels, more_titles = model_panels(material, label, chosen)
    panels += more_panels
    titles += more_titles
  return layout.grid(panels, titles, columns=len(chosen) + 1,
                     panel_width=160)


def write(path: str, materials: Sequence[tuple[str, dict]]) -> None:
  """The figure as PNG at `path` (atomically)."""
  from cmt import atomic_files  # pylint: disable=g-import-not-at-top
  with atomic_files.open_atomic(path, 'wb') as f:
    figure(materials).save(f, format='PNG', optimize=True)

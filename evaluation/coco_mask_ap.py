"""COCO mask AP of the thing classes, from panoptic predictions.

Each predicted thing segment of a panoptic map is one detection, scored by
the post-processing's segment score (`post_processing` docs); every
ground-truth thing segment is a COCO instance, crowd regions as `iscrowd`
instances (so detections on them are ignored, as COCO does). pycocotools'
`COCOeval(iouType='segm')` computes AP@[.50:.95] over all thing classes.
Masks are kept as run-length encodings, so a dataset's worth stays small;
accumulators merge.
"""

import contextlib
import io
from typing import Mapping, Optional

import numpy as np
from pycocotools import coco as coco_lib
from pycocotools import cocoeval
from pycocotools import mask as mask_lib

from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import panoptic_quality

# Score of a detection the caller gave no score for.
DEFAULT_SCORE = 1.0


def _encode(mask: np.ndarray) -> dict:
  rle = mask_lib.encode(np.asfortranarray(mask.astype(np.uint8)))
  rle['counts'] = rle['counts'].decode('ascii')
  return rle


class MaskAPAccumulator:
  """Collects ground-truth instances and scored detections image by image."""

  def __init__(self, dataset_info: dataset_info_lib.DatasetInfo):
    self.dataset_info = dataset_info
    self.reset()

  def reset(self):
    self.images: list[dict] = []
    self.ground_truth: list[dict] = []
    self.detections: list[dict] = []

  def update(self, gt_panoptic: np.ndarray, gt_crowd: Optional[np.ndarray],
             pred_panoptic: np.ndarray,
             segment_scores: Optional[Mapping[int, float]] = None):
    """Adds one image (label maps `semantic * divisor + instance`)."""
    info = self.dataset_info
    image_id = len(self.images) + 1
    height, width = np.asarray(gt_panoptic).shape
    self.images.append({'id': image_id, 'height': height, 'width': width})
    is_thing = np.asarray(info.thing_mask)
    for labels, crowd, target in ((gt_panoptic, gt_crowd, self.ground_truth),
                                  (pred_panoptic, None, self.detections)):
      id_map, table = panoptic_quality.segments_of_label_map(
          labels, info.label_divisor, info.num_classes, crowd)
      labels = np.asarray(labels).astype(np.int64)
      for row, segment_id in enumerate(table.ids):
        class_id = int(table.classes[row])
        if not is_thing[class_id]:
          continue
        mask = id_map == segment_id
        entry = {'image_id': image_id, 'category_id': class_id,
                 'segmentation': _encode(mask),
                 'area': float(table.areas[row]),
                 'iscrowd': int(table.is_crowd[row])}
        if target is self.detections:
          label = int(labels[mask][0])
          scores = segment_scores or {}
          entry['score'] = float(scores.get(label, DEFAULT_SCORE))
        else:
          entry['bbox'] = [float(v) for v in mask_lib.toBbox(
              entry['segmentation'])]
        target.append(entry)

  def merge(self, other: 'MaskAPAccumulator'):
    offset = len(self.images)
    self.images.extend({**image, 'id': image['id'] + offset}
                       for image in other.images)
    for mine, theirs in ((self.ground_truth, other.ground_truth),
                         (self.detections, other.detections)):
      mine.extend({**entry, 'image_id': entry['image_id'] + offset}
                  for entry in theirs)

  def result(self) -> Optional[float]:
    """AP@[.50:.95] in percent; None when no ground-truth thing exists."""
    if not any(not g['iscrowd'] for g in self.ground_truth):
      return None
    info = self.dataset_info
    categories = [{'id': c, 'name': info.class_names[c]}
                  for c in range(1, info.num_classes + 1) if info.is_thing(c)]
    ground_truth = coco_lib.COCO()
    ground_truth.dataset = {
        'images': self.images, 'categories': categories,
        'annotations': [{**g, 'id': i + 1}
                        for i, g in enumerate(self.ground_truth)]}
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
      ground_truth.createIndex()
      if self.detections:
        detections = ground_truth.loadRes(
            [dict(d) for d in self.detections])
      else:
        detections = coco_lib.COCO()
        detections.dataset = {'images': self.images,
                              'categories': categories, 'annotations': []}
        detections.createIndex()
      evaluation = cocoeval.COCOeval(ground_truth, detections, 'segm')
      evaluation.evaluate()
      evaluation.accumulate()
      evaluation.summarize()
    ap = float(evaluation.stats[0])
    return max(ap, 0.0) * 100

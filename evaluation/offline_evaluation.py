"""Panoptic quality of COCO panoptic prediction files against ground truth.

Reads ground-truth and prediction JSON + PNG folders, checks the
predictions as panopticapi does (every ground-truth image has a
prediction; every segment id in a PNG is in its JSON and the reverse; every
category is known) with errors that name the file, and sums
`panoptic_quality.match_segments` over the images, optionally in several
processes. Numbers equal panopticapi's `pq_compute`: the ground-truth
segment areas are taken from the JSON as it does, the predicted ones are
counted on the PNG.
"""

import dataclasses
import json
import multiprocessing
import os
import sys
from typing import Optional, Sequence

import numpy as np

from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import coco_panoptic_format
from cmt.evaluation import panoptic_quality


class EvaluationError(ValueError):
  """Inputs that cannot be evaluated; the message names the file at fault."""


@dataclasses.dataclass(frozen=True)
class ImagePair:
  """One ground-truth annotation and the prediction for the same image."""
  gt_annotation: dict
  pred_annotation: dict


@dataclasses.dataclass(frozen=True)
class Sources:
  gt_json: str
  gt_folder: str
  pred_json: str
  pred_folder: str


def load_json(path: str, what: str) -> dict:
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except OSError as error:
    raise EvaluationError(f'{path}: cannot read the {what}: '
                          f'{error.strerror}') from None
  except json.JSONDecodeError as error:
    raise EvaluationError(f'{path}: the {what} is not valid JSON: '
                          f'{error}') from None
  if not isinstance(data, dict) or not isinstance(
      data.get('annotations'), list):
    raise EvaluationError(f'{path}: the {what} needs an "annotations" list')
  return data


def _annotation_field(annotation, key: str, path: str, index: int):
  if not isinstance(annotation, dict) or key not in annotation:
    raise EvaluationError(f'{path}: annotation #{index} has no {key!r}')
  return annotation[key]


def _stem(file_name) -> str:
  return os.path.splitext(os.path.basename(str(file_name)))[0]


def _index_annotations(annotations: list, path: str, key, what: str
                       ) -> dict:
  """{key(annotation): annotation}; every field pairing needs is checked."""
  indexed = {}
  for index, annotation in enumerate(annotations):
    for field in ('image_id', 'file_name', 'segments_info'):
      _annotation_field(annotation, field, path, index)
    value = key(annotation)
    if value in indexed:
      raise EvaluationError(f'{path}: {what} {value!r} has two annotations')
    indexed[value] = annotation
  return indexed


def pair_annotations(gt: dict, pred: dict, sources: Sources
                     ) -> list[ImagePair]:
  """Matches every ground-truth annotation with its prediction: by
  image_id, as panopticapi does; when the prediction ids are not the ground
  truth's (e.g. `cmt-predict`'s file-stem ids against integer ids), by the
  PNG file name without extension."""
  by_id = _index_annotations(gt['annotations'], sources.gt_json,
                             lambda a: a['image_id'], 'image_id')
  predictions = _index_annotations(pred['annotations'], sources.pred_json,
                                   lambda a: a['image_id'], 'image_id')
  key = lambda a: a['image_id']
  if not all(image_id in predictions for image_id in by_id):
    by_name = _index_annotations(pred['annotations'], sources.pred_json,
                                 lambda a: _stem(a['file_name']),
                                 'file name')
    gt_names = {_stem(a['file_name']) for a in gt['annotations']}
    if gt_names.issubset(by_name):
      predictions, key = by_name, lambda a: _stem(a['file_name'])
  pairs = []
  for annotation in gt['annotations']:
    if key(annotation) not in predictions:
      raise EvaluationError(
          f'{sources.pred_json}: no prediction for image_id '
          f'{annotation["image_id"]!r} (ground truth {annotation["file_name"]} '
          f'in {sources.gt_json}; matched by image_id, or else by file name)')
    pairs.append(ImagePair(annotation, predictions[key(annotation)]))
  return pairs


def _class_of(category_id, info: dataset_info_lib.DatasetInfo, where: str
              ) -> int:
  try:
    return info.to_class_id(int(category_id))
  except (KeyError, TypeError, ValueError):
    raise EvaluationError(f'{where} has unknown category_id '
                          f'{category_id!r}') from None


def _ground_truth_table(annotation: dict, gt_ids: np.ndarray, info,
                        sources: Sources) -> panoptic_quality.SegmentTable:
  """Ground-truth segments; areas from the JSON (as panopticapi), else
  counted on the PNG."""
  segments = annotation['segments_info']
  where = f'{sources.gt_json}: image_id {annotation["image_id"]!r}, segment'
  ids = np.array([int(s['id']) for s in segments], np.int64)
  classes = np.array([_class_of(s['category_id'], info, f'{where} {s["id"]}')
                      for s in segments], np.int64)
  if all('area' in s for s in segments):
    areas = np.array([int(s['area']) for s in segments], np.int64)
  else:
    values, counts = np.unique(gt_ids, return_counts=True)
    area_of = dict(zip(values.tolist(), counts.tolist()))
    areas = np.array([area_of.get(i, 0) for i in ids.tolist()], np.int64)
  crowd = np.array([bool(s.get('iscrowd', 0)) for s in segments], bool)
  return panoptic_quality.SegmentTable(ids, classes, areas, crowd)


def _prediction_table(annotation: dict, pred_ids: np.ndarray, png_path: str,
                      info, sources: Sources) -> panoptic_quality.SegmentTable:
  """Checks the PNG against its segments_info; areas come from the PNG."""
  image = f'image_id {annotation["image_id"]!r}'
  listed = [int(s['id']) for s in annotation['segments_info']]
  if len(set(listed)) != len(listed):
    raise EvaluationError(f'{sources.pred_json}: {image} lists a segment id '
                          'twice')
  if 0 in listed:
    raise EvaluationError(f'{sources.pred_json}: {image} lists segment id 0, '
                          'which COCO reserves for void')
  values, areas = np.unique(pred_ids, return_counts=True)
  area_of = dict(zip(values.tolist(), areas.tolist()))
  not_in_json = sorted(set(area_of) - set(listed) - {0})
  if not_in_json:
    raise EvaluationError(
        f'{png_path}: segment ids {not_in_json} are in the PNG but not in the '
        f'segments_info of {image} in {sources.pred_json}')
  not_in_png = sorted(set(listed) - set(area_of))
  if not_in_png:
    raise EvaluationError(
        f'{sources.pred_json}: segment ids {not_in_png} of {image} are not in '
        f'its PNG {png_path}')
  classes = np.array(
      [_class_of(s.get('category_id'), info,
                 f'{sources.pred_json}: {image}, segment {s["id"]}')
       for s in annotation['segments_info']], np.int64)
  return panoptic_quality.SegmentTable(
      ids=np.array(listed, np.int64), classes=classes,
      areas=np.array([area_of[i] for i in listed], np.int64),
      is_crowd=np.zeros(len(listed), bool))


def evaluate_pair(pair: ImagePair, sources: Sources,
                  info: dataset_info_lib.DatasetInfo
                  ) -> panoptic_quality.ImageStats:
  """Reads and checks one image's files; its per-category counts."""
  gt_path = os.path.join(sources.gt_folder, pair.gt_annotation['file_name'])
  pred_path = os.path.join(sources.pred_folder,
                           pair.pred_annotation['file_name'])
  try:
    gt_ids = coco_panoptic_format.read_segment_ids(gt_path)
    pred_ids = coco_panoptic_format.read_segment_ids(pred_path)
  except ValueError as error:
    raise EvaluationError(str(error)) from None
  if gt_ids.shape != pred_ids.shape:
    raise EvaluationError(f'{pred_path}: size {pred_ids.shape[::-1]} differs '
                          f'from the ground truth {gt_path} '
                          f'{gt_ids.shape[::-1]} (width, height)')
  gt = _ground_truth_table(pair.gt_annotation, gt_ids, info, sources)
  pred = _prediction_table(pair.pred_annotation, pred_ids, pred_path, info,
                           sources)
  return panoptic_quality.match_segments(gt_ids, gt, pred_ids, pred,
                                         info.num_classes)


def _evaluate_chunk(args) -> panoptic_quality.ImageStats:
  pairs, sources, info = args
  return panoptic_quality.sum_stats(
      [evaluate_pair(pair, sources, info) for pair in pairs],
      info.num_classes + 1)


def categories_of(gt: dict, sources: Sources,
                  categories_json: Optional[str]
                  ) -> dataset_info_lib.DatasetInfo:
  """The categories file when given, else the ground truth's categories."""
  try:
    if categories_json:
      return dataset_info_lib.from_categories_json(categories_json)
    if not gt.get('categories'):
      raise EvaluationError(f'{sources.gt_json}: has no "categories"; pass '
                            '--categories_json')
    return dataset_info_lib.from_categories(sources.gt_json,
                                            gt['categories'],
                                            source=sources.gt_json)
  except EvaluationError:
    raise
  except ValueError as error:
    raise EvaluationError(str(error)) from None


def evaluate(sources: Sources, categories_json: Optional[str] = None,
             workers: int = 1) -> tuple[dict, dataset_info_lib.DatasetInfo]:
  """PQ/SQ/RQ of the prediction files; (metrics, categories)."""
  for folder, what in ((sources.gt_folder, 'ground-truth'),
                       (sources.pred_folder, 'prediction')):
    if not os.path.isdir(folder):
      raise EvaluationError(f'{folder}: the {what} PNG folder does not exist')
  gt = load_json(sources.gt_json, 'ground-truth JSON')
  pred = load_json(sources.pred_json, 'prediction JSON')
  info = categories_of(gt, sources, categories_json)
  pairs = pair_annotations(gt, pred, sources)
  stats = evaluate_pairs(pairs, sources, info, workers)
  metrics = panoptic_quality.pq_result(stats, info)
  metrics['num_images'] = len(pairs)
  return metrics, info


def evaluate_pairs(pairs: Sequence[ImagePair], sources: Sources,
                   info: dataset_info_lib.DatasetInfo, workers: int
                   ) -> panoptic_quality.ImageStats:
  if workers < 1:
    raise EvaluationError(f'--workers must be at least 1, got {workers}')
  size = info.num_classes + 1
  if workers == 1 or len(pairs) < 2:
    return _evaluate_chunk((pairs, sources, info))
  chunks = [list(chunk) for chunk in np.array_split(
      np.arange(len(pairs)), min(workers, len(pairs)))]
  jobs = [([pairs[i] for i in chunk], sources, info) for chunk in chunks]
  with _process_context().Pool(len(jobs)) as pool:
    return panoptic_quality.sum_stats(pool.map(_evaluate_chunk, jobs), size)


def default_workers() -> int:
  """Every core this process may use."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def _process_context():
  """fork where it is safe (no TensorFlow threads in this process: the
  `cmt-evaluate` command), else spawn; fork skips re-importing numpy and
  PIL in every worker."""
  if 'fork' in multiprocessing.get_all_start_methods() and (
      'tensorflow' not in sys.modules):
    return multiprocessing.get_context('fork')
  return multiprocessing.get_context('spawn')


def format_table(metrics: dict) -> str:
  """The All / Things / Stuff table panopticapi prints."""
  lines = ['{:10s}| {:>5s}  {:>5s}  {:>5s} {:>5s}'.format(
      '', 'PQ', 'SQ', 'RQ', 'N'), '-' * 38]
  for name, suffix in (('All', ''), ('Things', '_things'),
                       ('Stuff', '_stuff')):
    lines.append('{:10s}| {:5.1f}  {:5.1f}  {:5.1f} {:5d}'.format(
        name, metrics['pq' + suffix], metrics['sq' + suffix],
        metrics['rq' + suffix], metrics['n' + suffix]))
  return '\n'.join(lines)

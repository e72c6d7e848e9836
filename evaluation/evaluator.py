"""The evaluator the trainer feeds: PQ, mask AP, mIoU, COCO panoptic files.

    evaluator = PanopticEvaluator(dataset_info, evaluator_options, output_dir)
    for each image:  evaluator.update(gt_panoptic, gt_crowd, pred_panoptic,
                                      image_name, segment_scores)
    metrics = evaluator.result()
    evaluator.write_metrics_json(path, experiment_name, config_file, step)

As COCO's tools do, predictions are compared with the ground truth at the
image's ORIGINAL size, as stored: the caller resizes each prediction back
to it first (`cmt.trainer.eval_loop`, with `preprocessing.resize_label`,
the SavedModel's convention). With `evaluator_options.save_predictions`
every prediction is also written in COCO panoptic format under
`output_dir`: `output_dir/panoptic/<image_name>.png` and
`output_dir/panoptic.json` (written by `result()`), ready for
`cmt-evaluate` (which then reports the same numbers) or the test-dev server.
"""

import json
import os
from typing import Mapping, Optional

import numpy as np

from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import coco_mask_ap
from cmt.evaluation import coco_panoptic_format
from cmt.evaluation import panoptic_quality
from cmt.evaluation import semantic_iou
from cmt.protos import evaluator_pb2



class PanopticEvaluator:
  """Streams PQ/SQ/RQ (All/Things/Stuff), COCO mask AP and mIoU.

  Reads `compute_mask_ap` and `save_predictions` of `EvaluatorOptions` (the
  post-processing reads the thresholds; the trainer the step counts).
  """

  def __init__(self, dataset_info: dataset_info_lib.DatasetInfo,
               evaluator_options: evaluator_pb2.EvaluatorOptions,
               output_dir: Optional[str] = None):
    self.dataset_info = dataset_info
    self.options = evaluator_options
    self.output_dir = output_dir
    if evaluator_options.save_predictions and not output_dir:
      raise ValueError('evaluator_options.save_predictions is set but the '
                       'evaluator got no output_dir')
    self.panoptic_quality = panoptic_quality.PQAccumulator(dataset_info)
    self.mean_iou = semantic_iou.MeanIoUAccumulator(dataset_info.num_classes)
    self.mask_ap = (coco_mask_ap.MaskAPAccumulator(dataset_info)
                    if evaluator_options.compute_mask_ap else None)
    self.writer = None
    if evaluator_options.save_predictions:
      self.writer = coco_panoptic_format.CocoPanopticWriter(
          os.path.join(output_dir, coco_panoptic_format.PANOPTIC_JSON),
          os.path.join(output_dir, coco_panoptic_format.PNG_FOLDER),
          dataset_info)

  def reset(self):
    self.panoptic_quality.reset()
    self.mean_iou.reset()
    if self.mask_ap is not None:
      self.mask_ap.reset()
    if self.writer is not None:
      self.writer.annotations.clear()
      self.writer.images.clear()

  def update(self, gt_panoptic: np.ndarray, gt_crowd: Optional[np.ndarray],
             pred_panoptic: np.ndarray, image_name,
             segment_scores: Optional[Mapping[int, float]] = None):
    """Adds one image.

    Args:
      gt_panoptic: [H, W] int ground truth, semantic * divisor + instance,
        at the image's original size.
      gt_crowd: [H, W] nonzero on crowd regions, or None.
      pred_panoptic: [H, W] int prediction at the same size.
      image_name: str or bytes, the image's file name without extension.
      segment_scores: {panoptic label: score} of the predicted segments,
        the detection scores of the mask AP (`segment_scores_of`).
    """
    if isinstance(image_name, bytes):
      image_name = image_name.decode('utf-8')
    image_name = str(image_name)
    gt_panoptic = np.asarray(gt_panoptic)
    pred_panoptic = np.asarray(pred_panoptic)
    if gt_panoptic.shape != pred_panoptic.shape or gt_panoptic.ndim != 2:
      raise ValueError(f'{image_name}: ground truth {gt_panoptic.shape} and '
                       f'prediction {pred_panoptic.shape} must be the same '
                       '[H, W]')
    self.panoptic_quality.update(gt_panoptic, pred_panoptic, gt_crowd)
    divisor = self.dataset_info.label_divisor
    self.mean_iou.update(gt_panoptic // divisor, pred_panoptic // divisor)
    if self.mask_ap is not None:
      self.mask_ap.update(gt_panoptic, gt_crowd, pred_panoptic,
                          segment_scores)
    if self.writer is not None:
      self.writer.add(image_name, pred_panoptic)

  def merge(self, other: 'PanopticEvaluator'):
    """Adds another evaluator's images (another replica or process)."""
    self.panoptic_quality.merge(other.panoptic_quality)
    self.mean_iou.merge(other.mean_iou)
    if self.mask_ap is not None and other.mask_ap is not None:
      self.mask_ap.merge(other.mask_ap)
    if self.writer is not None and other.writer is not None:
      self.writer.merge(other.writer)

  def result(self) -> dict:
    """Metrics in percent: pq, sq, rq, n, ..._things, ..._stuff, ap, miou.

    `ap` is None when `compute_mask_ap` is off or there is no ground-truth
    thing; `miou` None before any labelled pixel; `per_class` maps class
    names to pq, sq, rq, tp, fp, fn; `num_images` counts the images.
    Also writes the predictions JSON when saving predictions.
    """
    metrics = self.panoptic_quality.result()
    metrics['ap'] = self.mask_ap.result() if self.mask_ap is not None else None
    metrics['miou'] = self.mean_iou.result()
    metrics['num_images'] = self.panoptic_quality.num_images
    if self.writer is not None:
      self.writer.write_json()
    return metrics

  def write_metrics_json(self, path: str, experiment_name: str,
                         config_file: str, step: int,
                         metrics: Optional[dict] = None) -> dict:
    """Writes {experiment_name, config_file, step, metrics} (`cmt-paper-tables`
    reads `<model_dir>/eval/metrics.json`); computes `result()` unless given.
    """
    metrics = self.result() if metrics is None else metrics
    content = {'experiment_name': experiment_name,
               'config_file': config_file, 'step': int(step),
               'metrics': metrics}
    # tf.io.gfile so a gs:// model_dir works; imported here because
    # cmt-evaluate and cmt-paper-tables never need TensorFlow.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    folder = os.path.dirname(path)
    if folder:
      tf.io.gfile.makedirs(folder)
    temporary = path + '.tmp'
    with tf.io.gfile.GFile(temporary, 'w') as f:
      f.write(json.dumps(content, indent=1))
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return content


def segment_scores_of(segment_labels: np.ndarray,
                      segment_scores: np.ndarray) -> dict[int, float]:
  """Per-slot outputs of `post_process` -> {panoptic label: score}.

  segment_labels, segment_scores: [N] for one image (PRED_SEGMENT_LABELS,
  PRED_SEGMENT_SCORES); label 0 marks a slot that produced nothing. Slots
  merged into one stuff segment give it their best score.
  """
  scores: dict[int, float] = {}
  for label, score in zip(np.asarray(segment_labels).tolist(),
                          np.asarray(segment_scores).tolist()):
    if label:
      scores[label] = max(score, scores.get(label, float('-inf')))
  return scores

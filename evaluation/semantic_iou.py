"""Mean intersection-over-union of semantic maps, streamed over a dataset.

    IoU_c = |pred = c and gt = c| / |pred = c or gt = c|,  mIoU = mean_c IoU_c

over the classes 1..C that occur in the ground truth or the prediction
(union > 0). Ground-truth void pixels (class 0) are ignored; a prediction of
void on a labelled pixel counts against that pixel's class. A confusion
matrix is accumulated, so accumulators of several replicas add up.
"""

from typing import Optional

import numpy as np


class MeanIoUAccumulator:
  """Confusion matrix [C + 1, C + 1] (rows ground truth, columns prediction)."""

  def __init__(self, num_classes: int):
    self.num_classes = num_classes
    self.confusion = np.zeros((num_classes + 1, num_classes + 1), np.int64)

  def reset(self):
    self.confusion[:] = 0

  def update(self, gt_semantic: np.ndarray, pred_semantic: np.ndarray):
    gt_semantic = np.asarray(gt_semantic).astype(np.int64).reshape(-1)
    pred_semantic = np.asarray(pred_semantic).astype(np.int64).reshape(-1)
    if gt_semantic.shape != pred_semantic.shape:
      raise ValueError('semantic maps differ in size')
    size = self.num_classes + 1
    for name, values in (('ground truth', gt_semantic),
                         ('prediction', pred_semantic)):
      if values.size and (values.min() < 0 or values.max() >= size):
        raise ValueError(f'{name} semantic class outside 0..{size - 1}')
    labelled = gt_semantic != 0
    self.confusion += np.bincount(
        gt_semantic[labelled] * size + pred_semantic[labelled],
        minlength=size * size).reshape(size, size)

  def merge(self, other: 'MeanIoUAccumulator'):
    self.confusion += other.confusion

  def per_class_iou(self) -> np.ndarray:
    """[C + 1] IoU per class (NaN where the class never occurs, and void)."""
    true_positive = np.diag(self.confusion).astype(np.float64)
    union = (self.confusion.sum(0) + self.confusion.sum(1)
             - np.diag(self.confusion)).astype(np.float64)
    # Void predictions only count as misses: drop void's own column total.
    union[0] = 0
    return np.divide(true_positive, union, out=np.full(len(union), np.nan),
                     where=union > 0)

  def result(self) -> Optional[float]:
    """mIoU in percent, None before any labelled pixel."""
    iou = self.per_class_iou()[1:]
    if np.all(np.isnan(iou)):
      return None
    return float(100 * np.nanmean(iou))

"""The Orbit evaluation loop: model -> post-processing -> panoptic metrics.

Each step runs the model in inference mode and `post_process` (both in the
graph, on every replica), then hands the panoptic maps of the batch to the
numpy `PanopticEvaluator` on the host. At the end: PQ/SQ/RQ (All / Things /
Stuff), AP and mIoU go to TensorBoard under `model_dir/eval` and to
`model_dir/eval/metrics.json`; the first `num_summary_images` predictions
are drawn as images.
"""

import os
from typing import Callable, Optional

import numpy as np
import orbit
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.evaluation.evaluator import segment_scores_of
from cmt.protos import config_pb2

METRICS_JSON = 'metrics.json'
# model_dir/eval/predictions/{panoptic.json, panoptic/*.png}
PREDICTIONS_FOLDER = 'predictions'

_TO_HOST = (common.GT_PANOPTIC, common.GT_CROWD, common.IMAGE,
            common.IMAGE_SIZE, common.ORIGINAL_IMAGE_SIZE, common.IMAGE_NAME)
# Per-slot labels and scores of `post_process` (the detection scores of the
# mask AP), when the post-processing provides them.
_SEGMENT_LABELS = getattr(common, 'PRED_SEGMENT_LABELS', None)
_SEGMENT_SCORES = getattr(common, 'PRED_SEGMENT_SCORES', None)


def colorize_panoptic(panoptic: np.ndarray, class_colors: np.ndarray,
                      label_divisor: int) -> np.ndarray:
  """[H, W] panoptic map -> [H, W, 3] uint8: class colour, shaded by instance."""
  semantic = panoptic // label_divisor
  instance = panoptic % label_divisor
  color = class_colors[np.clip(semantic, 0, len(class_colors) - 1)].astype(
      np.float32)
  # Instances of one class: alternate brightness so neighbours differ.
  shade = np.where(instance > 0, 0.6 + 0.4 * ((instance * 37) % 11) / 10.0, 1.)
  return np.clip(color * shade[..., None], 0, 255).astype(np.uint8)


def _flatten_metrics(result: dict, prefix: str = '') -> dict:
  """Metric dicts -> {'a/b': float} of finite scalars for TensorBoard
  (per-class figures stay in metrics.json)."""
  flat = {}
  for key, value in result.items():
    name = f'{prefix}{key}'
    if key == 'per_class':
      continue
    if isinstance(value, dict):
      flat.update(_flatten_metrics(value, name + '/'))
    elif isinstance(value, (int, float, np.integer, np.floating)) and (
        not isinstance(value, bool)) and np.isfinite(value):
      flat[name] = float(value)
  return flat


class CMTEvaluator(orbit.StandardEvaluator):
  """StandardEvaluator: post-processed predictions into PanopticEvaluator."""

  def __init__(self, options: config_pb2.ExperimentOptions,
               strategy: tf.distribute.Strategy, model: tf_keras.Model,
               eval_dataset, dataset_info, post_process: Callable,
               panoptic_evaluator, model_dir: str, global_step: tf.Variable,
               config_file: str = ''):
    super().__init__(eval_dataset)
    self._options = options
    self._evaluator_options = options.evaluator_options
    self._strategy = strategy
    self._model = model
    self._dataset_info = dataset_info
    self._post_process = post_process
    self._panoptic_evaluator = panoptic_evaluator
    self._eval_dir = os.path.join(model_dir, 'eval')
    self._global_step = global_step
    self._config_file = config_file
    self._summary_images = []
    self._class_colors = np.array(
        [(0, 0, 0)] + [c.color for c in dataset_info.categories], np.uint8)
    self.last_result: Optional[dict] = None

  def eval_begin(self):
    self._panoptic_evaluator.reset()
    self._summary_images = []

  def _replica_eval(self, inputs):
    outputs = self._model(inputs[common.IMAGE], training=False)
    predictions = self._post_process(outputs, self._evaluator_options,
                                     self._dataset_info)
    host = {key: inputs[key] for key in _TO_HOST if key in inputs}
    for key in (common.PRED_PANOPTIC, _SEGMENT_LABELS, _SEGMENT_SCORES):
      if key in predictions:
        host[key] = predictions[key]
    return host

  def eval_step(self, iterator):
    return self._strategy.run(self._replica_eval, args=(next(iterator),))

  def eval_reduce(self, state=None, step_outputs=None):
    batches = [tf.nest.map_structure(lambda t: t.numpy(), local) for local in
               self._strategy.experimental_local_results(step_outputs)]
    for batch in batches:
      for index in range(batch[common.PRED_PANOPTIC].shape[0]):
        self._add_image({key: value[index] for key, value in batch.items()})
    return state

  def _add_image(self, image: dict):
    height, width = (int(v) for v in image[common.IMAGE_SIZE])
    crop = lambda array: array[:height, :width]
    segment_scores = None
    if _SEGMENT_LABELS in image and _SEGMENT_SCORES in image:
      segment_scores = segment_scores_of(image[_SEGMENT_LABELS],
                                         image[_SEGMENT_SCORES])
    gt_crowd = image.get(common.GT_CROWD)
    self._panoptic_evaluator.update(
        gt_panoptic=image[common.GT_PANOPTIC],
        gt_crowd=None if gt_crowd is None else gt_crowd > 0,
        pred_panoptic=image[common.PRED_PANOPTIC],
        image_name=image.get(common.IMAGE_NAME, b''),
        original_size=image.get(common.ORIGINAL_IMAGE_SIZE),
        segment_scores=segment_scores,
        image_size=(height, width))
    if len(self._summary_images) < self._evaluator_options.num_summary_images:
      picture = crop(image[common.IMAGE]).astype(np.uint8)
      label_divisor = self._dataset_info.label_divisor
      gt = colorize_panoptic(crop(image[common.GT_PANOPTIC]),
                             self._class_colors, label_divisor)
      pred = colorize_panoptic(crop(image[common.PRED_PANOPTIC]),
                               self._class_colors, label_divisor)
      # image | ground truth | prediction, side by side.
      self._summary_images.append(np.concatenate([picture, gt, pred], axis=1))

  def eval_end(self, *unused_args):
    result = self._panoptic_evaluator.result()
    step = int(self._global_step.numpy())
    tf.io.gfile.makedirs(self._eval_dir)
    self._panoptic_evaluator.write_metrics_json(
        os.path.join(self._eval_dir, METRICS_JSON),
        experiment_name=self._options.experiment_name,
        config_file=self._config_file, step=step, metrics=result)
    for index, picture in enumerate(self._summary_images):
      tf.summary.image(f'predictions/{index}', picture[None], step=step)
    self.last_result = result
    return _flatten_metrics(result)

"""The Orbit evaluation loop: model -> post-processing -> panoptic metrics.

The evaluation set comes in two parts (`cmt.data.eval_inputs`): device
inputs (image, valid size, index, validity; numbers only, static shapes, the
last batch padded) and host-only data (name, ground truth at the original
size), joined here by the index, on whichever process receives the
results: under TPUStrategy (one client) and MirroredStrategy the one
process gets every replica's outputs; under MultiWorkerMirroredStrategy
they are gathered from every worker, and each worker scores every image.
The device inputs continue with padding after the last image, so the loop
ends after the step in which the host-only data run out (each image scored
exactly once; an index that comes back twice, or never, is an error).

Each step runs the model in inference mode and `post_process` on every
replica (one XLA cluster when `jit_compile` is on) and returns only the
panoptic map at crop resolution, the per-slot
labels and scores (the detection scores of the mask AP) and the index,
validity and valid size. On the host each valid prediction is cut to its
valid region, resized to the image's original size with
`preprocessing.resize_label` (the SavedModel's convention) and compared
with the original ground truth by `PanopticEvaluator`: PQ/SQ/RQ (All /
Things / Stuff), AP and mIoU as COCO's tools compute them. At the end the
metrics go to TensorBoard under `model_dir/eval` and to
`model_dir/eval/metrics.json`; the first `num_summary_images` images are
drawn (image | ground truth | prediction, original size) from host data.
"""

import os
from typing import Callable, Iterator, Optional

import numpy as np
import orbit
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.data import pipeline
from cmt.data import preprocessing
from cmt.evaluation.evaluator import segment_scores_of
from cmt.protos import config_pb2
from cmt.vis import colors

METRICS_JSON = 'metrics.json'
# With `save_predictions`: model_dir/eval/predictions/ holds the COCO
# panoptic files (`coco_panoptic_format.PANOPTIC_JSON`, `PNG_FOLDER`).
PREDICTIONS_FOLDER = 'predictions'

# What a replica returns besides the predictions: the join key and where
# the prediction is valid.
_PASSED_THROUGH = (common.EVAL_INDEX, common.IMAGE_VALID, common.IMAGE_SIZE)
_PREDICTIONS = (common.PRED_PANOPTIC, common.PRED_SEGMENT_LABELS,
                common.PRED_SEGMENT_SCORES)


class HostData:
  """Host-only examples by index, read in file order in step with the
  device's results (each step holds a contiguous run of indices, so only
  about a step's worth is ever held)."""

  def __init__(self, make_examples: Callable[[], Iterator]):
    self._make_examples = make_examples
    self.reset()

  def reset(self):
    self._iterator = None
    self._pending = {}
    self._num_read = 0

  def _read(self) -> bool:
    """Reads the next example into `_pending`; False after the last."""
    if self._iterator is None:
      self._iterator = iter(self._make_examples())
    example = next(self._iterator, None)
    if example is None:
      return False
    self._pending[example.index] = example
    self._num_read += 1
    return True

  def pop(self, index: int):
    while index not in self._pending:
      if 0 <= index < self._num_read:
        raise ValueError(f'evaluation index {index} came back from the '
                         'device twice')
      if not self._read():
        raise ValueError(f'evaluation index {index} has no host-only data: '
                         'device and host read different sets')
    return self._pending.pop(index)

  def all_popped(self) -> bool:
    """Whether every example has been popped (reads one ahead to know)."""
    return not self._pending and not self._read()

  def first_unpopped(self) -> int:
    return min(self._pending) if self._pending else self._num_read


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
               eval_dataset, host_examples: Callable[[], Iterator],
               dataset_info, post_process: Callable, panoptic_evaluator,
               model_dir: str, global_step: tf.Variable,
               jit_compile: bool = False, config_file: str = ''):
    """`eval_dataset`: distributed device inputs; `host_examples()`: the
    host-only data in the same order (`cmt.data.eval_inputs`)."""
    super().__init__(eval_dataset)
    self._options = options
    self._evaluator_options = options.evaluator_options
    self._strategy = strategy
    self._model = model
    self._host_data = HostData(host_examples)
    self._dataset_info = dataset_info
    self._resize_range = pipeline.resize_range(options.eval_dataset_options,
                                               is_training=False)
    self._post_process = post_process
    self._panoptic_evaluator = panoptic_evaluator
    self._eval_dir = os.path.join(model_dir, 'eval')
    self._global_step = global_step
    self._config_file = config_file
    self._summary_images = []
    self._class_colors = np.array(dataset_info.class_colors, np.uint8)
    self._jit_compile = jit_compile
    # The compiled per-replica step, one per replica id (tests inspect their
    # inputs).
    self.replica_functions = {}
    self.last_result: Optional[dict] = None

  def eval_begin(self):
    self._panoptic_evaluator.reset()
    self._host_data.reset()
    self._summary_images = []

  def _replica_eval(self, inputs):
    outputs = self._model(inputs[common.IMAGE], training=False)
    predictions = self._post_process(
        outputs, self._evaluator_options, self._dataset_info,
        inputs[common.IMAGE].shape[1:3])
    returned = {key: inputs[key] for key in _PASSED_THROUGH}
    # As a number: collective all-gather (several workers) takes no bool.
    returned[common.IMAGE_VALID] = tf.cast(inputs[common.IMAGE_VALID],
                                           tf.int32)
    returned.update({key: predictions[key] for key in _PREDICTIONS
                     if key in predictions})
    return returned

  def _replica_step(self, inputs):
    """`_replica_eval` as its own function, one per replica: under XLA a
    function traced on one device must not be reused with another
    replica's variables (XLA known issue "tf.Variable on a different
    device"). TPU replica ids are not static: one function, as TPUs want."""
    replica_id = tf.get_static_value(
        tf.distribute.get_replica_context().replica_id_in_sync_group)
    replica_id = None if replica_id is None else int(replica_id)
    if replica_id not in self.replica_functions:
      self.replica_functions[replica_id] = tf.function(
          self._replica_eval, jit_compile=self._jit_compile)
    return self.replica_functions[replica_id](inputs)

  def eval_step(self, iterator):
    outputs = self._strategy.run(self._replica_step, args=(next(iterator),))
    if isinstance(self._strategy, tf.distribute.MultiWorkerMirroredStrategy):
      # Every worker receives every replica's outputs, in one batch.
      return [tf.nest.map_structure(
          lambda value: self._strategy.gather(value, axis=0), outputs)]
    # One process: its local results are every replica's (TPUStrategy's
    # single client included).
    return list(self._strategy.experimental_local_results(outputs))

  def eval_reduce(self, state=None, step_outputs=None):
    """Scores the step's valid images in index order; raises StopIteration
    (Orbit's end of evaluation) once every image is scored."""
    batches = [tf.nest.map_structure(lambda t: t.numpy(), batch)
               for batch in step_outputs]
    images = [{key: value[row] for key, value in batch.items()}
              for batch in batches
              for row in np.flatnonzero(batch[common.IMAGE_VALID])]
    if not images and not self._host_data.all_popped():
      raise ValueError(
          'the device inputs ended before evaluation index '
          f'{self._host_data.first_unpopped()}: device and host read '
          'different sets')
    for image in sorted(images, key=lambda image: image[common.EVAL_INDEX]):
      self._add_image(image)
    if self._host_data.all_popped():
      raise StopIteration
    return state

  def _add_image(self, image: dict):
    index = int(image[common.EVAL_INDEX])
    example = self._host_data.pop(index)
    height, width = (int(v) for v in image[common.IMAGE_SIZE])
    expected = tuple(preprocessing.resized_size(
        example.original_size, *self._resize_range).numpy())
    if (height, width) != expected:
      raise ValueError(
          f'evaluation index {index} ({example.name}): the device image is '
          f'{height} x {width} but the host image resizes to {expected[0]} x '
          f'{expected[1]}: device and host data are paired wrongly')
    prediction = preprocessing.resize_label(
        tf.constant(image[common.PRED_PANOPTIC][:height, :width]),
        example.original_size).numpy()
    segment_scores = None
    if common.PRED_SEGMENT_LABELS in image:
      segment_scores = segment_scores_of(image[common.PRED_SEGMENT_LABELS],
                                         image[common.PRED_SEGMENT_SCORES])
    self._panoptic_evaluator.update(
        gt_panoptic=example.gt_panoptic, gt_crowd=example.gt_crowd,
        pred_panoptic=prediction, image_name=example.name,
        segment_scores=segment_scores)
    if len(self._summary_images) < self._evaluator_options.num_summary_images:
      label_divisor = self._dataset_info.label_divisor
      gt = colors.panoptic_colors(example.gt_panoptic, self._class_colors,
                                  label_divisor)
      pred = colors.panoptic_colors(prediction, self._class_colors,
                                    label_divisor)
      # image | ground truth | prediction, side by side, original size.
      self._summary_images.append(
          np.concatenate([example.decode_image(), gt, pred], axis=1))

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

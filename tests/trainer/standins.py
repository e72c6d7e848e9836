"""Tiny stand-ins for the model, loss and data pipeline (trainer tests only).

They follow the contracts of `cmt.model.builder`, `cmt.model.loss.builder`
and `cmt.data.pipeline` closely enough to exercise the trainer: a conv
"backbone" with SyncBatchNorm, a head that is not backbone, a float32
loss averaged over the local batch, and a deterministic dataset of fixed
images split by `input_context`.
"""

import functools
import io

import numpy as np
from PIL import Image
import tensorflow as tf
import tf_keras

from cmt import common
from cmt.data import dataset_info as dataset_info_lib
from cmt.data import eval_inputs
from cmt.trainer import train_lib

# The smallest crop validation accepts at output stride 16 (16k + 1).
CROP = 17
NUM_CLASSES = 3
NUM_IMAGES = 32


def dataset_info():
  return dataset_info_lib.from_categories('standin', [
      {'id': 1, 'name': 'thing', 'isthing': 1},
      {'id': 2, 'name': 'stuff', 'isthing': 0},
      {'id': 3, 'name': 'other', 'isthing': 0}])


class TinyModel(tf_keras.Model):
  """conv -> SyncBN -> GeLU (backbone) -> 1x1 conv head (class logits)."""

  def __init__(self, sync_batchnorm=True, num_classes=NUM_CLASSES,
               name='tiny_model'):
    super().__init__(name=name)
    norm = (tf_keras.layers.experimental.SyncBatchNormalization
            if sync_batchnorm else tf_keras.layers.BatchNormalization)
    self.backbone_conv = tf_keras.layers.Conv2D(4, 3, padding='same',
                                                name='backbone_conv')
    self.backbone_norm = norm(momentum=0.9, name='backbone_norm')
    self.head = tf_keras.layers.Conv2D(num_classes + 1, 1, name='head')

  def call(self, images, training=False):
    x = self.backbone_conv(images / 127.5 - 1.0)
    x = tf.nn.gelu(self.backbone_norm(x, training=training))
    logits = self.head(x)
    return {common.SEMANTIC_LOGITS: logits,
            common.MASK_LOGITS: logits}


def pretrained_variables(model, model_options):
  """The backbone's trainable variables when there is an initial
  checkpoint (as `cmt.model.builder.pretrained_variables`)."""
  if not model_options.initial_checkpoint:
    return []
  return (model.backbone_conv.trainable_variables +
          model.backbone_norm.trainable_variables)


def build_loss(options, info):
  del info
  weight = options.trainer_options.loss_options.semantic_loss.weight

  def loss_fn(ground_truth, outputs):
    logits = outputs[common.SEMANTIC_LOGITS]
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(
        ground_truth[common.GT_SEMANTIC], logits)
    semantic = weight * tf.reduce_mean(per_pixel)
    return {common.LOSS_SEMANTIC: semantic, common.LOSS_TOTAL: semantic}
  return loss_fn


def _examples():
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (NUM_IMAGES, CROP, CROP, 3)).astype(np.float32)
  semantic = rng.integers(0, NUM_CLASSES + 1,
                          (NUM_IMAGES, CROP, CROP)).astype(np.int32)
  return {common.IMAGE: images, common.GT_SEMANTIC: semantic,
          common.GT_PANOPTIC: semantic * 256,
          common.IMAGE_SIZE: np.full((NUM_IMAGES, 2), CROP, np.int32),
          common.IMAGE_NAME: np.array([f'standin_{i:03d}'.encode()
                                       for i in range(NUM_IMAGES)])}


def build_dataset(dataset_options, info, is_training, input_context=None,
                  skip_examples=0, nan_batch=None):
  """Fixed examples, in order, from the `skip_examples`-th of this input
  pipeline on; `nan_batch`: that batch's images are NaN."""
  del info
  batch = dataset_options.batch_size
  examples = _examples()
  if nan_batch is not None:
    examples[common.IMAGE][nan_batch * batch:(nan_batch + 1) * batch] = np.nan
  data = tf.data.Dataset.from_tensor_slices(examples)
  if input_context is not None:
    batch = input_context.get_per_replica_batch_size(batch)
    data = data.shard(input_context.num_input_pipelines,
                      input_context.input_pipeline_id)
  if is_training:
    data = data.repeat().skip(skip_examples)
  return data.batch(batch, drop_remainder=is_training)


def build_eval_dataset(dataset_options, info, input_context=None):
  """Device inputs of the fixed examples (`cmt.data.eval_inputs`)."""
  del info
  examples = _examples()
  data = tf.data.Dataset.from_tensor_slices({
      common.IMAGE: examples[common.IMAGE],
      common.IMAGE_SIZE: examples[common.IMAGE_SIZE],
      common.EVAL_INDEX: np.arange(NUM_IMAGES, dtype=np.int32),
      common.IMAGE_VALID: np.ones(NUM_IMAGES, bool)})
  return eval_inputs.pad_and_batch(
      eval_inputs.shard(data, input_context), (CROP, CROP),
      eval_inputs.per_replica_batch(dataset_options, input_context))


def host_examples(dataset_options, info):
  """Host-only data of the fixed examples, in order."""
  del dataset_options, info
  examples = _examples()
  for index in range(NUM_IMAGES):
    encoded = io.BytesIO()
    Image.fromarray(examples[common.IMAGE][index].astype(np.uint8)).save(
        encoded, format='PNG')
    yield eval_inputs.HostExample(
        index=index, name=examples[common.IMAGE_NAME][index].decode(),
        gt_panoptic=examples[common.GT_PANOPTIC][index],
        gt_crowd=np.zeros((CROP, CROP), bool),
        encoded_image=encoded.getvalue())


def post_process(outputs, evaluator_options, info, crop_size):
  """Per-pixel argmax of the semantic logits, one segment per class."""
  del evaluator_options, crop_size
  semantic = tf.argmax(outputs[common.SEMANTIC_LOGITS], axis=-1,
                       output_type=tf.int32)
  return {common.PRED_PANOPTIC: semantic * info.label_divisor}


def builders(sync_batchnorm=True, num_classes=NUM_CLASSES, nan_batch=None):
  # pylint: disable=g-import-not-at-top
  from cmt.evaluation import evaluator
  return train_lib.Builders(
      get_dataset_info=lambda unused_options: dataset_info(),
      build_model=lambda options, info: TinyModel(sync_batchnorm, num_classes),
      pretrained_variables=pretrained_variables,
      build_loss=build_loss,
      build_dataset=functools.partial(build_dataset, nan_batch=nan_batch),
      post_process=post_process,
      make_panoptic_evaluator=evaluator.PanopticEvaluator,
      build_eval_dataset=build_eval_dataset,
      host_examples=host_examples)


def options_text(steps=4, batch=8, optimizer='SGD', extra_solver='',
                 extra_trainer='', steps_per_loop=2, seed=0):
  return f'''
experiment_name: "standin"
trainer_options {{
  save_checkpoints_steps: {steps_per_loop}
  save_summaries_steps: {steps_per_loop}
  steps_per_loop: {steps_per_loop}
  {extra_trainer}
  solver_options {{
    optimizer: {optimizer}
    base_learning_rate: 0.1
    warmup_steps: 0
    training_number_of_steps: {steps}
    {extra_solver}
  }}
}}
train_dataset_options {{
  # A name and files validation accepts; the stand-in builders ignore them.
  dataset: "coco_panoptic"
  file_pattern: "standin-train-*"
  batch_size: {batch}
  seed: {seed}
  crop_size: {CROP}
  crop_size: {CROP}
}}
eval_dataset_options {{
  dataset: "coco_panoptic"
  file_pattern: "standin-val-*"
  batch_size: 4
  crop_size: {CROP}
  crop_size: {CROP}
}}
evaluator_options {{
  compute_mask_ap: false
  num_summary_images: 2
  eval_steps: 2
}}
'''


def options(**kwargs):
  from google.protobuf import text_format
  from cmt.protos import config_pb2
  return text_format.Parse(options_text(**kwargs),
                           config_pb2.ExperimentOptions())


def simulated_hosts(num_hosts: int, replicas_per_host: int
                    ) -> tf.distribute.MirroredStrategy:
  """TPUStrategy's single-client model on this process's logical CPU
  devices (split into at least num_hosts * replicas_per_host first).

  One process drives `num_hosts` simulated hosts. Each has its own input
  pipeline (`InputContext.input_pipeline_id` = host, `num_input_pipelines`
  = num_hosts) feeding its `replicas_per_host` replicas, and
  `experimental_local_results` hands the one process every replica's
  outputs, host after host, as TPUStrategy does on a pod. It is
  MirroredStrategy with its input workers (input device, replica devices)
  regrouped one per simulated host.
  """
  count = num_hosts * replicas_per_host
  devices = [d.name for d in tf.config.list_logical_devices('CPU')]
  if len(devices) < count:
    raise ValueError(f'{num_hosts} hosts x {replicas_per_host} replicas need '
                     f'{count} logical CPU devices, found {len(devices)}')
  strategy = tf.distribute.MirroredStrategy(devices[:count])
  replicas = strategy.extended.worker_devices
  strategy.extended._input_workers_devices = tuple(  # pylint: disable=protected-access
      (replicas[host * replicas_per_host],
       tuple(replicas[host * replicas_per_host:
                      (host + 1) * replicas_per_host]))
      for host in range(num_hosts))
  return strategy

"""Hand-made ground truth and model outputs for the loss tests."""

import numpy as np

from cmt import common
from cmt.data import dataset_info
from cmt.protos import config_pb2
from cmt.protos import trainer_pb2

# Classes: 1 'thing-a' (thing), 2 'stuff-b' (stuff), 3 'thing-c' (thing).
DATASET = dataset_info.from_categories('toy', [
    {'id': 1, 'name': 'thing-a', 'isthing': 1},
    {'id': 2, 'name': 'stuff-b', 'isthing': 0},
    {'id': 3, 'name': 'thing-c', 'isthing': 1},
])
NUM_CLASSES = 3


def ground_truth(mask_id, mask_class, valid=None):
  """GT dict from [B, H, W] mask ids and [B, K] classes (0 = padding)."""
  mask_id = np.asarray(mask_id, np.int32)
  mask_class = np.asarray(mask_class, np.int32)
  if valid is None:
    valid = mask_class > 0
  is_thing = np.isin(mask_class, [1, 3])
  semantic = np.where(
      mask_id >= 0,
      np.take_along_axis(mask_class, np.maximum(mask_id, 0).reshape(
          len(mask_id), -1), axis=1).reshape(mask_id.shape), 0)
  return {
      common.GT_MASK_ID: mask_id,
      common.GT_MASK_CLASS: mask_class,
      common.GT_MASK_VALID: np.asarray(valid, np.float32),
      common.GT_MASK_IS_THING: is_thing.astype(np.float32),
      common.GT_SEMANTIC: semantic.astype(np.int32),
  }


def random_case(rng, batch=2, crop=17, num_masks=6, num_slots=8,
                num_points=5, channels=4, num_valid=None, void_fraction=0.2):
  """A random batch: ground truth at crop size, outputs at stride 4."""
  height = (crop - 1) // 4 + 1
  num_valid = num_masks - 2 if num_valid is None else num_valid
  mask_class = np.zeros((batch, num_masks), np.int32)
  mask_class[:, :num_valid] = rng.integers(1, NUM_CLASSES + 1,
                                           (batch, num_valid))
  mask_id = rng.integers(0, max(num_valid, 1), (batch, crop, crop))
  mask_id = np.where(rng.random(mask_id.shape) < void_fraction, -1, mask_id)
  if num_valid == 0:
    mask_id[:] = -1
  gt = ground_truth(mask_id, mask_class)
  outputs = {
      common.MASK_LOGITS: rng.normal(size=(batch, height, height, num_slots)),
      common.CLASS_LOGITS: rng.normal(size=(batch, num_slots,
                                            NUM_CLASSES + 1)),
      common.PIXEL_FEATURES: rng.normal(size=(batch, height, height,
                                              channels)),
      common.SEMANTIC_LOGITS: rng.normal(size=(batch, height, height,
                                               NUM_CLASSES + 1)),
      common.REFERENCE_POINTS: rng.random((batch, num_slots, num_points, 2)),
  }
  outputs = {k: v.astype(np.float32) for k, v in outputs.items()}
  return gt, outputs


def options(pq_style=0.0, mask_id=0.0, instance=0.0, semantic=0.0,
            mask_approximation=0.0, alpha=0.75,
            unmatched_weight=trainer_pb2.PQStyleLossOptions.CONSTANT,
            temperature=0.3,
            discrimination=trainer_pb2.InstanceDiscriminationOptions
            .PIXEL_CONTRASTIVE, sample_count=4096, sample_temperature=1.5,
            deep_supervision=True):
  """ExperimentOptions with the given loss settings."""
  experiment = config_pb2.ExperimentOptions()
  loss = experiment.trainer_options.loss_options
  loss.pq_style_loss.weight = pq_style
  loss.pq_style_loss.alpha = alpha
  loss.pq_style_loss.unmatched_weight = unmatched_weight
  loss.mask_id_cross_entropy_loss.weight = mask_id
  loss.instance_discrimination_loss.weight = instance
  loss.instance_discrimination_loss.type = discrimination
  loss.instance_discrimination_loss.temperature = temperature
  loss.instance_discrimination_loss.sample_count = sample_count
  loss.instance_discrimination_loss.sample_temperature = sample_temperature
  loss.semantic_loss.weight = semantic
  loss.mask_approximation_loss.weight = mask_approximation
  loss.deep_supervision = deep_supervision
  return experiment

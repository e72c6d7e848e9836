"""A COCO crowd region from the annotation through training and evaluation.

One 17 x 17 image in COCO panoptic format with a person, a dog, grass, an
unlabelled strip and an `iscrowd` person region, converted by
`cmt-build-data`'s code. Training (as DeepLab2 trains on COCO, whose
converter writes crowd as void): the crowd pixels reach the device exactly as
void pixels would, so the semantic loss ignores them. Evaluation (as
panopticapi): the crowd region is no ground-truth segment, and an unmatched
prediction lying on the crowd of its own class is no false positive.
"""

import json

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from cmt import common
from cmt.data import build_data
from cmt.data import crop_targets
from cmt.data import dataset_info
from cmt.data import eval_inputs
from cmt.data import panoptic_label
from cmt.data import pipeline
from cmt.model.loss import builder as loss_builder
from cmt.protos import dataset_pb2
from cmt.protos import evaluator_pb2
from cmt.trainer import trainer
from evaluation import evaluator as evaluator_lib
from tests.model.loss import toy

CATEGORIES = [{'id': 1, 'name': 'person', 'isthing': 1},
              {'id': 18, 'name': 'dog', 'isthing': 1},
              {'id': 125, 'name': 'grass', 'isthing': 0}]
PERSON, DOG, GRASS = 1, 2, 3  # contiguous class ids
SIZE = 17                     # 4k + 1: the semantic logits are 5 x 5
STRIDE = 4
MAX_NUM_MASKS = 8
# COCO segment ids of the annotation.
GRASS_ID, PERSON_ID, CROWD_ID, DOG_ID = 101, 102, 103, 104


def _segment_map() -> np.ndarray:
  ids = np.full((SIZE, SIZE), GRASS_ID, np.int64)
  ids[0:8, 0:8] = PERSON_ID
  ids[9:17, 9:17] = CROWD_ID
  ids[9:17, 0:4] = 0          # unlabelled
  ids[0:4, 12:17] = DOG_ID
  return ids


def _crowd_pixels() -> np.ndarray:
  return _segment_map() == CROWD_ID


@pytest.fixture(scope='module')
def crowd_data(tmp_path_factory):
  """The image converted to one TFRecord: (dataset info, options)."""
  root = tmp_path_factory.mktemp('crowd')
  for folder in ('images', 'panoptic', 'records'):
    (root / folder).mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8)).save(
      root / 'images' / 'crowd.png')
  segment_map = _segment_map()
  Image.fromarray(panoptic_label.id_to_rgb(segment_map)).save(
      root / 'panoptic' / 'crowd.png')
  segments = [(GRASS_ID, 125, 0), (PERSON_ID, 1, 0), (CROWD_ID, 1, 1),
              (DOG_ID, 18, 0)]
  annotation = {'file_name': 'crowd.png', 'image_id': 1, 'segments_info': [
      {'id': i, 'category_id': c, 'iscrowd': crowd,
       'area': int((segment_map == i).sum())} for i, c, crowd in segments]}
  panoptic_json = root / 'panoptic.json'
  panoptic_json.write_text(json.dumps({
      'images': [{'id': 1, 'file_name': 'crowd.png'}],
      'annotations': [annotation], 'categories': CATEGORIES}))
  categories_json = root / 'categories.json'
  categories_json.write_text(json.dumps(CATEGORIES))
  info = dataset_info.from_categories_json(str(categories_json))
  build_data.build(str(root / 'images'), str(panoptic_json),
                   str(root / 'panoptic'), str(root / 'records'), info,
                   split_name='val', num_shards=1, show_progress=False)
  options = dataset_pb2.DatasetOptions(
      categories_json=str(categories_json),
      file_pattern=[str(root / 'records' / 'val-*')], batch_size=1,
      crop_size=[SIZE, SIZE], max_num_masks=MAX_NUM_MASKS, seed=1)
  return info, options


def _device_batch(crowd_data) -> dict:
  """The training batch as the device receives it."""
  info, options = crowd_data
  dataset = pipeline.build_dataset(options, info, is_training=True)
  return trainer.numeric_features(next(iter(dataset)))


def test_the_stored_label_keeps_the_crowd_class(crowd_data):
  """cmt-build-data stores crowd as its thing class with instance 0."""
  info, options = crowd_data
  example = next(eval_inputs.host_examples(options, info))
  crowd = _crowd_pixels()
  assert (example.gt_panoptic[crowd] == PERSON * info.label_divisor).all()
  np.testing.assert_array_equal(example.gt_crowd, crowd)


def test_the_device_sees_crowd_exactly_as_void(crowd_data):
  info, _ = crowd_data
  batch = _device_batch(crowd_data)
  semantic = batch[common.GT_SEMANTIC].numpy()[0]
  assert (semantic[_crowd_pixels()] == dataset_info.VOID).all()
  assert semantic[0, 0] == PERSON  # the non-crowd person keeps its class
  # Everything the device gets equals the targets of the same label with
  # the crowd written as void (DeepLab2's treat_crowd_as_ignore).
  ids, divisor = _segment_map(), info.label_divisor
  crowd_as_void = np.select(
      [ids == GRASS_ID, ids == PERSON_ID, ids == DOG_ID],
      [GRASS * divisor, PERSON * divisor + 1, DOG * divisor + 1], 0)
  expected = crop_targets.compute_targets(crowd_as_void.astype(np.int32), info,
                                     MAX_NUM_MASKS)
  assert sorted(batch) == sorted(trainer.DEVICE_KEYS)
  for key in loss_builder.GROUND_TRUTH_KEYS:
    np.testing.assert_array_equal(batch[key].numpy()[0],
                                  expected[key].numpy(), err_msg=key)


def _semantic_loss(info, batch, logits) -> float:
  loss_fn = loss_builder.build_loss(toy.options(semantic=1.0), info)
  return float(loss_fn(batch, {common.SEMANTIC_LOGITS: logits})[
      common.LOSS_SEMANTIC])


def test_semantic_loss_ignores_the_crowd_region(crowd_data):
  info, _ = crowd_data
  batch = _device_batch(crowd_data)
  height = (SIZE - 1) // STRIDE + 1
  logits = tf.random.stateless_normal([1, height, height, 4], [3, 4])
  on_crowd = _crowd_pixels()[::STRIDE, ::STRIDE]
  assert on_crowd.sum() == 4
  base = _semantic_loss(info, batch, logits)
  # A large change of every logit, only where the output samples crowd.
  change = tf.random.stateless_normal(logits.shape, [5, 6]) * 10.0
  crowd_only = tf.where(on_crowd[None, ..., None], change, 0.0)
  assert _semantic_loss(info, batch, logits + crowd_only) == base
  # The same change on one labelled person pixel moves the loss.
  person_only = np.zeros(logits.shape, np.float32)
  person_only[0, 0, 0] = change[0, 0, 0]
  assert _semantic_loss(info, batch, logits + person_only) != base


def _prediction(info) -> np.ndarray:
  """Person and grass found; the crowd region predicted as a person (left
  half) and a dog (right half); the real dog missed."""
  divisor = info.label_divisor
  prediction = np.full((SIZE, SIZE), GRASS * divisor, np.int32)
  prediction[0:8, 0:8] = PERSON * divisor + 1
  prediction[9:17, 9:13] = PERSON * divisor + 2
  prediction[9:17, 13:17] = DOG * divisor + 1
  return prediction


def test_evaluation_handles_crowd_as_panopticapi(crowd_data):
  info, options = crowd_data
  example = next(eval_inputs.host_examples(options, info))
  evaluator = evaluator_lib.PanopticEvaluator(
      info, evaluator_pb2.EvaluatorOptions())
  evaluator.update(example.gt_panoptic, example.gt_crowd, _prediction(info),
                   example.name)
  per_class = evaluator.result()['per_class']
  counts = {name: (c['tp'], c['fp'], c['fn']) for name, c in
            per_class.items()}
  # The person prediction on the person crowd: not a false positive, and the
  # crowd is no segment to miss. The dog prediction on it: a false positive
  # (only the crowd of its own class excuses a prediction); the real dog is
  # missed.
  assert counts == {'person': (1, 0, 0), 'dog': (0, 1, 1),
                    'grass': (1, 0, 0)}

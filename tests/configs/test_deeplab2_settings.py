"""Where the paper is silent, DeepLab2 decides: defaults and COCO configs."""

import pathlib

import pytest

from cmt.evaluation import paper_tables
from cmt.protos import evaluator_pb2
from cmt.protos import trainer_pb2

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / 'configs'
COCO_CONFIGS = sorted(str(p.relative_to(CONFIGS))
                      for p in (CONFIGS / 'coco').rglob('*.textproto'))
# DeepLab2's COCO configs: (thing, stuff) post-processing area limits, in
# pixels, per crop size.
DEEPLAB2_AREA_LIMITS = {641: (100, 1600), 1025: (256, 4096),
                        1281: (400, 6400)}
_PQ = trainer_pb2.PQStyleLossOptions


def test_defaults_are_deeplab2s():
  evaluator = evaluator_pb2.EvaluatorOptions()
  assert (evaluator.thing_area_limit,
          evaluator.stuff_area_limit) == DEEPLAB2_AREA_LIMITS[641]
  assert _PQ().unmatched_weight == _PQ.VOID_RATIO


def test_there_are_coco_configs():
  assert len(COCO_CONFIGS) >= 20


@pytest.mark.parametrize('relative_path', COCO_CONFIGS)
def test_coco_config_area_limits_are_deeplab2s_for_its_crop(relative_path):
  options = paper_tables.load_experiment(CONFIGS, relative_path)
  crop = list(options.eval_dataset_options.crop_size)
  assert len(set(crop)) == 1, f'{relative_path}: non-square crop {crop}'
  assert crop[0] in DEEPLAB2_AREA_LIMITS, (
      f'{relative_path}: crop {crop[0]} has no DeepLab2 area limits here')
  evaluator = options.evaluator_options
  assert (evaluator.thing_area_limit, evaluator.stuff_area_limit) == (
      DEEPLAB2_AREA_LIMITS[crop[0]]), relative_path


@pytest.mark.parametrize('relative_path', COCO_CONFIGS)
def test_coco_config_weights_unmatched_slots_by_void_ratio(relative_path):
  options = paper_tables.load_experiment(CONFIGS, relative_path)
  pq_style = options.trainer_options.loss_options.pq_style_loss
  assert pq_style.unmatched_weight == _PQ.VOID_RATIO

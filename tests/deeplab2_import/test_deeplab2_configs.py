"""The configs of DeepLab2's released MaX-DeepLab-S checkpoints."""

import pathlib

import pytest

from cmt import config as config_lib
from cmt.data import dataset_info as dataset_info_lib
from cmt.model import builder
from cmt.protos import evaluator_pb2
from cmt.protos import model_pb2
from cmt.protos import trainer_pb2

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / 'configs'
# DeepLab2's g3doc/projects/max_deeplab.md: (crop, k steps) -> PQ, Th, St.
RELEASED = {(641, 100): (45.9, 49.2, 40.9), (641, 200): (46.5, 50.6, 40.4),
            (641, 400): (47.0, 51.3, 40.5), (1025, 100): (47.9, 52.1, 41.5),
            (1025, 200): (48.7, 53.6, 41.3), (1025, 400): (49.0, 54.0, 41.4)}
# DeepLab2's area limits scale with the crop.
AREA_LIMITS = {641: (100, 1600), 1025: (256, 4096)}
PARAMS = {'INIT_CHECKPOINT': '', 'TRAIN_SET': '', 'VAL_SET': ''}


def _path(crop, steps):
  return (CONFIGS / 'coco' / 'max_deeplab' /
          f'max_deeplab_s_os16_res{crop}_{steps}k.textproto')


@pytest.mark.parametrize('crop,steps', sorted(RELEASED))
def test_config_states_deeplab2s_recipe_and_published_pq(crop, steps):
  path = _path(crop, steps)
  options = config_lib.load_config(str(path), params=PARAMS)
  assert options.experiment_name == path.stem
  pq, things, stuff = RELEASED[(crop, steps)]
  assert (f'PQ {pq} (things {things}, stuff {stuff})' in path.read_text())
  model = options.model_options
  assert model.backbone.activation == model_pb2.RELU
  assert model.backbone.dual_path_in_backbone
  assert not model.decoder.transformer_stages
  assert list(model.heads.aspp_atrous_rates) == [6, 12, 18]
  solver = options.trainer_options.solver_options
  assert solver.training_number_of_steps == steps * 1000
  for dataset in (options.train_dataset_options,
                  options.eval_dataset_options):
    assert dataset.dataset == 'coco_panoptic'
    assert list(dataset.crop_size) == [crop, crop]
  evaluator = options.evaluator_options
  assert evaluator.post_processing == evaluator_pb2.EvaluatorOptions.PER_PIXEL
  assert (evaluator.thing_area_limit,
          evaluator.stuff_area_limit) == AREA_LIMITS[crop]
  pq_loss = options.trainer_options.loss_options.pq_style_loss
  assert pq_loss.unmatched_weight == (
      trainer_pb2.PQStyleLossOptions.VOID_RATIO)


@pytest.mark.slow
def test_released_max_deeplab_s_counts_deeplab2s_parameters():
  models = {str(_path(*key)): config_lib.load_config(
      str(_path(*key)), params=PARAMS).model_options for key in RELEASED}
  first = next(iter(models.values()))
  assert all(m == first for m in models.values())  # one network for all six
  options = config_lib.load_config(str(_path(641, 100)), params=PARAMS)
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  assert builder.count_inference_params(options, info) == 61_900_200


def test_validation_refuses_a_layer_multiplier_that_empties_a_stage():
  options = config_lib.load_config(str(_path(641, 100)), params=PARAMS)
  options.model_options.backbone.layer_multiplier = 0.2
  options.model_options.heads.aspp_atrous_rates[:] = [6, 12]
  problems = config_lib.check_options(options)
  assert any('layer_multiplier = 0.2: leaves a stage' in p for p in problems)
  assert any('aspp_atrous_rates = [6, 12]: must list 3' in p
             for p in problems)

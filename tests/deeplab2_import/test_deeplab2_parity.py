"""DeepLab2's own checkpoints, read into our model, give DeepLab2's outputs.

Ground truth: ../shared/deeplab2 (checkpoints DeepLab2 wrote, with its
outputs on a fixed image). Tolerance: |ours - DeepLab2| <= 1e-4 + 1e-5 m,
m the largest |value| of that DeepLab2 tensor: absolute 1e-4, relative 1e-5
of the tensor's scale for the large ones (mask logits reach 17, class logits
68; float32 summation order moves their last digits). Measured: mask logits
1.2e-4, class logits 2.0e-4, pixel features 1.7e-6, semantic logits 1.8e-5.
"""

import logging

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt import config as config_lib
from cmt.data import dataset_info as dataset_info_lib
from cmt.model import builder
from cmt.model import post_processing
from cmt.model.backbone import axial_resnet
from cmt.model.layers import norm_act
from cmt.protos import model_pb2
from cmt.trainer import checkpoints
from cmt.trainer import deeplab2_checkpoint
from tests.deeplab2_import import conftest

ATOL, RTOL = 1e-4, 1e-5


def assert_close(ours, theirs, message):
  ours = np.asarray(ours)
  tolerance = ATOL + RTOL * float(np.abs(theirs).max())
  difference = float(np.abs(ours - theirs).max())
  assert ours.shape == theirs.shape, message
  assert difference <= tolerance, (
      f'{message}: max difference {difference:.3g} > {tolerance:.3g}')
R50_CONFIG = 'configs/coco/cmt_deeplab/table3_r50_res641_100k.textproto'


def _fixture_model():
  options = config_lib.load_config(
      str(conftest.HERE / 'max_deeplab_s_fixture.textproto'), params={})
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  return options, info, builder.build_and_initialise(options, info, 129)


def _void_last(class_logits):
  """Our class order (void first) -> DeepLab2's for COCO (void last)."""
  return np.concatenate([class_logits[..., 1:], class_logits[..., :1]], -1)


def test_max_deeplab_s_gives_deeplab2_outputs(deeplab2_fixtures):
  fixture = deeplab2_fixtures / 'max_deeplab_s'
  options, info, model = _fixture_model()
  reader = tf.train.load_checkpoint(str(fixture / 'ckpt' / 'ckpt-1'))
  plan = deeplab2_checkpoint.plan(model, reader, options, info)
  assert plan.layout == deeplab2_checkpoint.Layout.TRAINER
  assert not plan.left_at_init and not plan.unused and not plan.mismatched
  assert len(plan.mapped) == len(model.variables)
  deeplab2_checkpoint.apply(plan, reader)

  image = np.load(fixture / 'input_image.npy')[None].astype(np.float32)
  outputs = model(tf.constant(image), training=False)
  reference = np.load(fixture / 'outputs.npz')
  for ours, theirs in (
      (outputs[common.MASK_LOGITS], 'pixel_space_mask_logits'),
      (outputs[common.PIXEL_FEATURES], 'pixel_space_normalized_feature'),
      (outputs[common.SEMANTIC_LOGITS], 'semantic_logits'),
      (_void_last(np.asarray(outputs[common.CLASS_LOGITS])),
       'transformer_class_logits')):
    assert_close(ours, reference[theirs], theirs)

  # The panoptic map, identical up to a renumbering of instance ids.
  panoptic = post_processing.post_process(outputs, options.evaluator_options,
                                          info)[common.PRED_PANOPTIC]
  ours = np.asarray(panoptic)[0].ravel()
  theirs = reference['panoptic_pred'][0].ravel()
  pairs = set(zip(ours.tolist(), theirs.tolist()))
  assert len(pairs) == len(set(ours.tolist())) == len(set(theirs.tolist()))
  assert all(a // 256 == b // 256 for a, b in pairs)  # same classes
  assert len(pairs) == 11  # 7 thing and 3 stuff segments, and void


def _r50_options(output_stride: int):
  """CMT-DeepLab Axial-R50 at the fixture's width (0.125)."""
  options = config_lib.load_config(R50_CONFIG, params={
      'INIT_CHECKPOINT_IN22K': '', 'TRAIN_SET': '', 'VAL_SET': ''}, overrides=[
          'model_options.backbone.width_multiplier=0.125',
          f'model_options.backbone.output_stride={output_stride}',
          'trainer_options.solver_options.precision=FLOAT32',
          'trainer_options.solver_options.use_sync_batchnorm=false'])
  return options, dataset_info_lib.get_dataset_info(
      options.eval_dataset_options)


def _backbone_only(options):
  """The R50 config's backbone alone, where the model keeps it
  (`encoders[0].backbone`). CMT-DeepLab's stronger decoder (stage-5 then
  stage-4 transformer stages) is built for output stride 16 only, so at
  stride 32 the backbone is built by itself."""
  holder = tf.Module()
  holder.encoders = [tf.Module()]
  holder.encoders[0].backbone = axial_resnet.AxialResNet(
      options.model_options.backbone,
      norm_act.norm_config_from_solver(options.trainer_options.solver_options))
  holder.encoders[0].backbone(tf.zeros([1, 129, 129, 3]))
  return holder


def _warm_start(model, options, info, path):
  def from_deeplab2(reader, resolved):
    return deeplab2_checkpoint.warm_start(model, reader, resolved, options,
                                          info, backbone_only=True)
  return checkpoints.warm_start(model, path, model_pb2.ModelOptions.BACKBONE,
                                builder.backbone_variables(model),
                                foreign=from_deeplab2)


def _residual_endpoints(model, image, stages):
  endpoints = model.encoders[0].backbone(
      tf.constant(image / 127.5 - 1.0), training=False)
  activation = norm_act.get_activation(model_pb2.GELU)
  return {f'res{s}': np.asarray(activation(endpoints[f'stage{s}']))
          for s in stages}


def _check_restored(report, backbone, log):
  assert len(report.restored) == len(backbone) == 491
  assert not report.shape_mismatch and not report.missing
  assert f'{len(backbone)} of {len(backbone)} backbone variables' in log
  assert '0 DeepLab2 variables unused' in log


@pytest.mark.slow
def test_axial_resnet50_checkpoints_fill_the_r50_backbone(deeplab2_fixtures,
                                                          caplog):
  fixture = deeplab2_fixtures / 'axial_resnet50_gelu'
  image = np.load(fixture / 'input_image.npy')[None].astype(np.float32)
  reference = np.load(fixture / 'endpoints.npz')
  # kMaX's encoder runs at output stride 32 on the ImageNet checkpoint.
  options, info = _r50_options(32)
  holder = _backbone_only(options)
  backbone = builder.backbone_variables(holder)
  for layout in ('plain', 'model_garden'):
    for variable in backbone:  # nothing left over from the previous layout
      variable.assign(tf.zeros_like(variable))
    caplog.clear()
    with caplog.at_level(logging.INFO):
      report = _warm_start(holder, options, info, str(fixture / layout))
    _check_restored(report, backbone, caplog.text)
    ours = _residual_endpoints(holder, image, (2, 3, 4, 5))
    for name, value in ours.items():
      assert_close(value, reference[name], f'{layout} {name}')

  # The whole CMT-DeepLab R50 at output stride 16 (the paper's setting):
  # every backbone variable restored, res2-res4 unchanged.
  options, info = _r50_options(16)
  model = builder.build_and_initialise(options, info, 129)
  caplog.clear()
  with caplog.at_level(logging.INFO):
    report = _warm_start(model, options, info, str(fixture / 'plain'))
  _check_restored(report, builder.backbone_variables(model), caplog.text)
  ours = _residual_endpoints(model, image, (2, 3, 4))
  for name, value in ours.items():
    assert_close(value, reference[name], f'stride 16 {name}')

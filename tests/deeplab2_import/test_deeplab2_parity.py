"""DeepLab2's own checkpoints, read into our model, give DeepLab2's outputs.

Ground truth: ../shared/deeplab2 (checkpoints DeepLab2 wrote, with its
outputs on a fixed image). The weights are random, and a deep random network
amplifies round-off, so each tensor is judged against its own float32
conditioning (tests/deeplab2_import/conditioning.py): the model runs the
image and a copy with 1-2 ulp of noise in one batch, and |ours - DeepLab2|
must stay within a small multiple of the change that noise made, plus a
floor of a few ulp of the tensor's scale; the panoptic map may differ from
DeepLab2's in no more pixels than a small multiple of those the noise moved.
"""

import dataclasses
import logging

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt import config as config_lib
from cmt.data import dataset_info as dataset_info_lib
from cmt.deeplab2 import checkpoint as deeplab2_checkpoint
from cmt.model import builder
from cmt.model import post_processing
from cmt.model.backbone import axial_resnet
from cmt.model.layers import norm_act
from cmt.protos import model_pb2
from cmt.trainer import checkpoints
from tests.deeplab2_import import conditioning
from tests.deeplab2_import import conftest

PERTURBED = ('cmt_deeplab/encoder1/backbone/stage4_block2/attention/'
             'height_axis/qkv_kernel:0')
R50_CONFIG = 'configs/coco/cmt_deeplab/table3_r50_res641_100k.textproto'


def _fixture_model():
  options = config_lib.load_config(
      str(conftest.HERE / 'max_deeplab_s_fixture.textproto'), params={})
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  return options, info, builder.build_and_initialise(options, info, 129)


def _void_last(class_logits):
  """Our class order (void first) -> DeepLab2's for COCO (void last)."""
  return np.concatenate([class_logits[..., 1:], class_logits[..., :1]], -1)


def _deeplab2_named(outputs) -> dict:
  """Our outputs under the names of DeepLab2's `outputs.npz`."""
  return {
      'pixel_space_mask_logits': outputs[common.MASK_LOGITS],
      'pixel_space_normalized_feature': outputs[common.PIXEL_FEATURES],
      'semantic_logits': outputs[common.SEMANTIC_LOGITS],
      'transformer_class_logits': _void_last(
          np.asarray(outputs[common.CLASS_LOGITS]))}


@dataclasses.dataclass
class _MaXDeepLabS:
  """Our model holding DeepLab2's MaX-DeepLab-S fixture weights, the
  fixture image and DeepLab2's outputs on it."""
  options: object
  info: object
  model: object
  plan: object
  image: np.ndarray
  reference: dict

  def run(self, images):
    """Raw outputs and the panoptic maps of `images`."""
    outputs = self.model(tf.constant(images), training=False)
    panoptic = post_processing.post_process(
        outputs, self.options.evaluator_options,
        self.info)[common.PRED_PANOPTIC]
    return _deeplab2_named(outputs), np.asarray(panoptic)


@pytest.fixture(scope='module')
def max_deeplab_s(deeplab2_fixtures) -> _MaXDeepLabS:
  fixture = deeplab2_fixtures / 'max_deeplab_s'
  options, info, model = _fixture_model()
  reader = tf.train.load_checkpoint(str(fixture / 'ckpt' / 'ckpt-1'))
  plan = deeplab2_checkpoint.plan(model, reader, options, info)
  deeplab2_checkpoint.apply(plan, reader)
  image = np.load(fixture / 'input_image.npy')[None].astype(np.float32)
  return _MaXDeepLabS(options, info, model, plan, image,
                      dict(np.load(fixture / 'outputs.npz')))


def test_max_deeplab_s_gives_deeplab2_outputs(max_deeplab_s):
  plan, reference = max_deeplab_s.plan, max_deeplab_s.reference
  assert plan.layout == deeplab2_checkpoint.Layout.TRAINER
  assert not plan.left_at_init and not plan.unused and not plan.mismatched
  assert len(plan.mapped) == len(max_deeplab_s.model.variables)

  outputs, panoptic = max_deeplab_s.run(
      conditioning.with_noisy_copy(max_deeplab_s.image))
  ours, sensitivity = conditioning.split_noisy(outputs)
  conditioning.assert_match(
      ours, {name: reference[name] for name in ours}, sensitivity,
      'MaX-DeepLab-S outputs')

  # The panoptic map: DeepLab2's up to a renumbering of instance ids, but
  # for as many pixels as the input noise moves (none here), with the same
  # class in every pair of segments.
  theirs = reference['panoptic_pred'][0]
  assert len(np.unique(theirs)) == 11  # 7 thing and 3 stuff segments, void
  _, noise_moved = conditioning.pair_segments(panoptic[1], panoptic[0])
  pairs, differing = conditioning.pair_segments(panoptic[0], theirs)
  assert differing <= conditioning.MULTIPLE * noise_moved, (
      differing, noise_moved)
  assert len(pairs) == 11
  assert all(a // 256 == b // 256 for a, b in pairs)


def test_a_perturbed_variable_fails_the_comparison(max_deeplab_s):
  """A wrong value in one mapped variable, here one axial-attention kernel
  of the backbone scaled by 1.0001, puts the outputs outside their
  tolerance (measured: 6-8x; the true weights stay within 0.12x)."""
  variable, = [v for v in max_deeplab_s.model.variables
               if v.name == PERTURBED]
  original = variable.numpy()
  try:
    variable.assign(original * 1.0001)
    outputs, _ = max_deeplab_s.run(
        conditioning.with_noisy_copy(max_deeplab_s.image))
  finally:
    variable.assign(original)
  ours, sensitivity = conditioning.split_noisy(outputs)
  reference = max_deeplab_s.reference
  failures = conditioning.mismatches(
      ours, {name: reference[name] for name in ours}, sensitivity)
  assert sorted(failures) == sorted(ours), failures


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
  spec = builder.model_spec(options)
  holder.encoders[0].backbone = axial_resnet.AxialResNet(
      spec.backbone, norm_act.NormConfig.of(spec.norm))
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
  activation = norm_act.get_activation('gelu')
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
  reference = dict(np.load(fixture / 'endpoints.npz'))
  # kMaX's encoder runs at output stride 32 on the ImageNet checkpoint.
  options, info = _r50_options(32)
  holder = _backbone_only(options)
  backbone = builder.backbone_variables(holder)
  sensitivity = None
  for layout in ('plain', 'model_garden'):
    for variable in backbone:  # nothing left over from the previous layout
      variable.assign(tf.zeros_like(variable))
    caplog.clear()
    with caplog.at_level(logging.INFO):
      report = _warm_start(holder, options, info, str(fixture / layout))
    _check_restored(report, backbone, caplog.text)
    if sensitivity is None:  # the same weights in both layouts
      ours, sensitivity = conditioning.split_noisy(_residual_endpoints(
          holder, conditioning.with_noisy_copy(image), (2, 3, 4, 5)))
    else:
      ours = _residual_endpoints(holder, image, (2, 3, 4, 5))
    conditioning.assert_match(
        ours, {name: reference[name] for name in ours}, sensitivity, layout)

  # The whole CMT-DeepLab R50 at output stride 16 (the paper's setting):
  # every backbone variable restored, res2-res4 unchanged (the same
  # computation as at stride 32, so the same sensitivity).
  options, info = _r50_options(16)
  model = builder.build_and_initialise(options, info, 129)
  caplog.clear()
  with caplog.at_level(logging.INFO):
    report = _warm_start(model, options, info, str(fixture / 'plain'))
  _check_restored(report, builder.backbone_variables(model), caplog.text)
  ours = _residual_endpoints(model, image, (2, 3, 4))
  conditioning.assert_match(
      ours, {name: reference[name] for name in ours}, sensitivity,
      'stride 16')

"""Both stacks of the Recursive Feature Network start from the same
pretrained backbone, strictly, and only they learn at the backbone rate.

Ground truth: the Axial-ResNet-50 that DeepLab2 wrote
(../shared/deeplab2/axial_resnet50_gelu, width 0.125). The paper's Axial-R50
RFN config is built at that width; each of its backbone variables, in both
stacks, must equal the checkpoint's array of the same weight (stack 1's
DeepLab2 names, which the parity tests check against DeepLab2's outputs).
"""

import numpy as np
import pytest
import tensorflow as tf

from cmt import config as config_lib
from cmt.data import dataset_info as dataset_info_lib
from cmt.deeplab2 import checkpoint as deeplab2_checkpoint
from cmt.deeplab2 import import_checkpoint as import_deeplab2
from cmt.deeplab2 import names as deeplab2_names
from cmt.model import builder
from cmt.protos import model_pb2
from cmt.tools import import_deeplab2 as import_deeplab2_main
from cmt.trainer import checkpoints
from cmt.trainer import optimizer as optimizer_lib

RFN_CONFIG = ('configs/coco/cmt_deeplab/'
              'table2d_in22k_rfn_r50_res641_100k.textproto')
R50_CONFIG = 'configs/coco/cmt_deeplab/table3_r50_res641_100k.textproto'
# The fixture's widths; one transformer block per decoder stage (they are
# not pretrained and do not change what is tested, only the build time).
FIXTURE_WIDTH = [
    'model_options.backbone.width_multiplier=0.125',
    'model_options.decoder.transformer_stages[0].num_blocks=1',
    'model_options.decoder.transformer_stages[1].num_blocks=1',
    'trainer_options.solver_options.precision=FLOAT32',
    'trainer_options.solver_options.use_sync_batchnorm=false']
BACKBONE_PER_STACK = 491  # variables of the Axial-ResNet-50 (with BN stats)
_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'


def _options(config, checkpoint, *overrides):
  options = config_lib.load_config(config, params={
      'INIT_CHECKPOINT_IN22K': str(checkpoint), 'TRAIN_SET': '',
      'VAL_SET': ''}, overrides=[*FIXTURE_WIDTH, *overrides])
  return options, dataset_info_lib.get_dataset_info(
      options.eval_dataset_options)


def _warm_start(model, options, info):
  """What `cmt-train` does with `initial_checkpoint` (train_lib)."""
  model_options = options.model_options

  def from_deeplab2(reader, resolved):
    return deeplab2_checkpoint.warm_start(
        model, reader, resolved, options, info, backbone_only=True)
  return checkpoints.warm_start(
      model, model_options.initial_checkpoint, model_options.restore_scope,
      builder.pretrained_variables(model, model_options),
      foreign=from_deeplab2)


def _stack_backbones(model):
  """{stack: [(path, variable)]} of every backbone variable."""
  pairs = []
  checkpoints._walk(None, None, model, ['model'], set(), pairs)  # pylint: disable=protected-access
  backbones = {}
  for path, variable, _ in pairs:
    parts = path.split('/')
    if parts[1] == 'encoders' and parts[3] == 'backbone':
      backbones.setdefault(int(parts[2]), []).append((path, variable))
  return backbones


def _assert_both_stacks_equal_the_checkpoint(model, plain_checkpoint):
  """Every backbone variable of each stack == the DeepLab2 array; returns
  the count per stack."""
  reader = tf.train.load_checkpoint(plain_checkpoint)
  counts = {}
  for stack, variables in _stack_backbones(model).items():
    for path, variable in variables:
      first_stack_path = path.replace(f'encoders/{stack}/', 'encoders/0/', 1)
      name = deeplab2_names.deeplab2_name(first_stack_path)
      value = reader.get_tensor(name + _SUFFIX)
      np.testing.assert_array_equal(
          variable.numpy(), value.reshape(variable.shape), err_msg=path)
    counts[stack] = len(variables)
  return counts


def _multipliers(model, options):
  """{stack: set of learning-rate multipliers of its trainable backbone
  variables}, and those of every other trainable variable."""
  solver = options.trainer_options.solver_options
  optimizer = optimizer_lib.build_optimizer(
      solver, builder.pretrained_variables(model, options.model_options))
  backbone = {}
  for stack, variables in _stack_backbones(model).items():
    backbone[stack] = {round(optimizer.multiplier_of(v), 6)
                       for _, v in variables if v.trainable}
  backbone_refs = {v.ref() for vs in _stack_backbones(model).values()
                   for _, v in vs}
  others = {round(optimizer.multiplier_of(v), 6)
            for v in model.trainable_variables
            if v.ref() not in backbone_refs}
  return backbone, others


@pytest.mark.slow
def test_both_rfn_stacks_start_from_deeplab2s_backbone(deeplab2_fixtures,
                                                       tmp_path, capsys):
  fixture = deeplab2_fixtures / 'axial_resnet50_gelu'
  plain = tf.train.latest_checkpoint(str(fixture / 'plain'))
  options, info = _options(RFN_CONFIG, fixture / 'model_garden')
  model = builder.build_and_initialise(options, info)
  assert len(model.encoders) == 2

  # initial_checkpoint = DeepLab2's checkpoint (Model Garden form).
  report = _warm_start(model, options, info)
  assert _assert_both_stacks_equal_the_checkpoint(model, plain) == {
      0: BACKBONE_PER_STACK, 1: BACKBONE_PER_STACK}
  assert len(report.restored) == 2 * BACKBONE_PER_STACK
  assert not report.missing and not report.declared_absent
  # Both stacks at the backbone rate (0.1) because they are pretrained;
  # everything else (transformer stages, heads) at the full rate.
  backbone, others = _multipliers(model, options)
  assert backbone == {0: {0.1}, 1: {0.1}}
  assert others == {1.0}
  # Without an initial checkpoint nothing is pretrained: all at full rate.
  options.model_options.initial_checkpoint = ''
  backbone, others = _multipliers(model, options)
  assert backbone == {0: {1.0}, 1: {1.0}} and others == {1.0}

  # cmt-import-deeplab2 with the RFN config: both stacks in the report.
  out = tmp_path / 'imported_rfn'
  assert import_deeplab2_main.main([
      f'--deeplab2_checkpoint={fixture / "plain"}',
      f'--config_file={RFN_CONFIG}', f'--output_dir={out}',
      *[f'--override={o}' for o in FIXTURE_WIDTH],
      '--param=INIT_CHECKPOINT_IN22K=', '--param=TRAIN_SET=',
      '--param=VAL_SET=']) == 0
  report_text = (out / import_deeplab2.REPORT_NAME).read_text()
  assert (f'# backbone variables mapped: stack 1: {BACKBONE_PER_STACK}, '
          f'stack 2: {BACKBONE_PER_STACK}') in report_text
  for stack in (0, 1):
    assert (f'mapped model/encoders/{stack}/backbone/stem/_convs/0/_conv/'
            'kernel <- encoder/_stem/_conv1_bn_act/_conv/kernel') in (
                report_text)
  capsys.readouterr()


@pytest.mark.slow
def test_a_one_stack_checkpoint_of_ours_fills_both_rfn_stacks(
    deeplab2_fixtures, tmp_path, capsys):
  fixture = deeplab2_fixtures / 'axial_resnet50_gelu'
  plain = tf.train.latest_checkpoint(str(fixture / 'plain'))
  # Our checkpoint of the one-stack Axial-R50 (cmt-import-deeplab2).
  ours = tmp_path / 'r50'
  assert import_deeplab2_main.main([
      f'--deeplab2_checkpoint={plain}', f'--config_file={R50_CONFIG}',
      f'--output_dir={ours}', *[f'--override={o}' for o in FIXTURE_WIDTH],
      '--param=INIT_CHECKPOINT_IN22K=', '--param=TRAIN_SET=',
      '--param=VAL_SET=']) == 0
  assert f'stack 1: {BACKBONE_PER_STACK}\n' in capsys.readouterr().out

  options, info = _options(RFN_CONFIG, ours)
  model = builder.build_and_initialise(options, info)
  report = _warm_start(model, options, info)
  assert _assert_both_stacks_equal_the_checkpoint(model, plain) == {
      0: BACKBONE_PER_STACK, 1: BACKBONE_PER_STACK}
  assert len(report.restored) == 2 * BACKBONE_PER_STACK

  # WHOLE_MODEL declares the second stack's transformer stages too, which a
  # one-stack checkpoint does not have: refused, naming the first.
  with pytest.raises(ValueError) as refused:
    checkpoints.warm_start(model, str(ours), model_pb2.ModelOptions.WHOLE_MODEL,
                           builder.pretrained_variables(
                               model, options.model_options))
  message = str(refused.value)
  assert '\n' not in message and 'restore_scope WHOLE_MODEL' in message
  assert 'the first: model/encoders/1/' in message


def _import_r50(fixture, output_dir, *overrides):
  return import_deeplab2_main.main([
      f'--deeplab2_checkpoint={fixture / "plain"}',
      f'--config_file={R50_CONFIG}', f'--output_dir={output_dir}',
      *[f'--override={o}' for o in [*FIXTURE_WIDTH, *overrides]],
      '--param=INIT_CHECKPOINT_IN22K=', '--param=TRAIN_SET=',
      '--param=VAL_SET='])


@pytest.mark.slow
def test_a_deeper_backbone_needs_its_partial_start_declared(
    deeplab2_fixtures, tmp_path, capsys):
  fixture = deeplab2_fixtures / 'axial_resnet50_gelu'
  # Two more stage-4 blocks than the checkpoint's Axial-ResNet-50 has (an
  # Axial-ResNet-104 has 18 more): undeclared, the run stops in one line
  # naming the first missing variable and the count.
  deeper = 'model_options.backbone.num_blocks=3,4,8,3'
  assert _import_r50(fixture, tmp_path / 'refused', deeper) == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1, error
  assert ('84 of the 575 variables (every backbone variable) that a '
          'DeepLab2 backbone checkpoint (encoder/...) gives are not in the '
          'checkpoint, the first: model/encoders/0/backbone/stages/2/6/'
          '_conv1/_conv/kernel') in error[0]
  assert 'encoder/_stage4/_block7/' in error[0]
  assert 'initial_checkpoint_num_blocks' in error[0]
  assert not (tmp_path / 'refused').exists()

  # Declared: the 2 blocks (2 x 42 variables) start from initialisation.
  assert _import_r50(fixture, tmp_path / 'declared', deeper,
                     'model_options.initial_checkpoint_num_blocks=3,4,6,3'
                     ) == 0
  printed = capsys.readouterr().out
  assert f'# backbone variables mapped: stack 1: {BACKBONE_PER_STACK}\n' in (
      printed)
  assert 'initial_checkpoint_num_blocks: 84)' in printed

  # A declaration the checkpoint contradicts (it holds stage-4 block 6).
  assert _import_r50(fixture, tmp_path / 'contradicted',
                     'model_options.initial_checkpoint_num_blocks=3,4,5,3'
                     ) == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and 'declares 42 backbone variables absent' in (
      error[0])
  assert 'model/encoders/0/backbone/stages/2/5/' in error[0]

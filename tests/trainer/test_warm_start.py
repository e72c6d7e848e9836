"""Strict warm start from a checkpoint of ours (`initial_checkpoint`):
every variable the scope declares pretrained is restored or the run stops
in one line; a deliberate partial start is declared and learns at the full
rate."""

import numpy as np
import pytest
import tensorflow as tf

from cmt import config as config_lib
from cmt.data import dataset_info as dataset_info_lib
from cmt.model import builder
from cmt.protos import model_pb2
from cmt.tools import train as train_main
from cmt.trainer import checkpoints
from cmt.trainer import train_lib
from tests.trainer import standins
from tests.trainer.conftest import DEMO_CONFIG
from tests.trainer.conftest import param_flags

# The demo's backbone has one block per stage; the target one more in
# stage 4, which the checkpoint does not hold.
DEEPER = 'model_options.backbone.num_blocks=1,1,2,1'
DECLARED = 'model_options.initial_checkpoint_num_blocks=1,1,1,1'


def test_a_missing_pretrained_variable_stops_the_warm_start(tmp_path):
  source = standins.TinyModel()
  source(tf.zeros([1, standins.CROP, standins.CROP, 3]))
  tf.train.Checkpoint(model=source).write(str(tmp_path / 'ckpt'))
  target = standins.TinyModel()
  target(tf.zeros([1, standins.CROP, standins.CROP, 3]))
  target.extra = tf.Variable(tf.zeros([2]))  # not in the checkpoint
  kernel_before = target.backbone_conv.kernel.numpy()
  for scope, pretrained in (
      (model_pb2.ModelOptions.BACKBONE,
       [target.extra, *target.backbone_conv.variables]),
      (model_pb2.ModelOptions.WHOLE_MODEL, [])):
    with pytest.raises(ValueError) as refused:
      checkpoints.warm_start(target, str(tmp_path / 'ckpt'), scope,
                             pretrained)
    message = str(refused.value)
    assert message.startswith('model_options.initial_checkpoint = ')
    assert 'the first: model/extra;' in message and '\n' not in message
    assert message.split(': ')[1].startswith('1 of the ')
    # Refused before anything was assigned.
    np.testing.assert_array_equal(target.backbone_conv.kernel.numpy(),
                                  kernel_before)


def _write_demo_checkpoint(directory, params):
  options = config_lib.load_config(str(DEMO_CONFIG), params=params)
  info = dataset_info_lib.get_dataset_info(options.train_dataset_options)
  model = builder.build_and_initialise(options, info)
  prefix = str(directory / 'ckpt')
  tf.train.Checkpoint(model=model).write(prefix)
  return prefix, model


@pytest.mark.slow
def test_cmt_train_stops_on_an_undeclared_partial_start(
    tmp_path, synthetic_records, capsys):
  prefix, source = _write_demo_checkpoint(tmp_path, synthetic_records)
  flags = [f'--config_file={DEMO_CONFIG}', '--mode=train',
           *param_flags(synthetic_records), f'--override={DEEPER}',
           f'--override=model_options.initial_checkpoint={prefix}',
           '--override=model_options.restore_scope=BACKBONE']
  model_dir = tmp_path / 'refused'
  assert train_main.main([*flags, f'--model_dir={model_dir}']) == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1, error
  assert ('restore_scope BACKBONE declares pretrained are not in the '
          'checkpoint, the first: model/encoders/0/backbone/stages/2/1/'
          ) in error[0]
  assert ' 42 of the ' in error[0]  # the added block's variables
  assert checkpoints.latest_step(str(model_dir)) is None

  # Declared: the run builds, the added block starts from initialisation
  # and learns at the full rate; the restored backbone at 0.1.
  options = config_lib.load_config(str(DEMO_CONFIG), params=synthetic_records,
                                   overrides=[
      DEEPER, DECLARED, f'model_options.initial_checkpoint={prefix}',
      'trainer_options.solver_options.backbone_learning_rate_multiplier=0.1'])
  with train_lib.precision_policy(options.trainer_options.solver_options):
    run = train_lib.build_run('train', options, str(tmp_path / 'declared'),
                              tf.distribute.get_strategy())
  backbone = run.model.encoders[0].backbone
  for ours, saved in zip(backbone.stages[2][0].variables,
                         source.encoders[0].backbone.stages[2][0].variables):
    np.testing.assert_array_equal(ours.numpy(), saved.numpy())
  added = backbone.stages[2][1].trainable_variables
  held = [v for v in backbone.trainable_variables
          if v.ref() not in {a.ref() for a in added}]
  optimizer = run.optimizer
  assert {round(optimizer.multiplier_of(v), 6) for v in held} == {0.1}
  assert {optimizer.multiplier_of(v) for v in added} == {1.0}

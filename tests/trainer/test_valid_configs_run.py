"""What `cmt-config validate` accepts runs: unusual
but valid tiny configs pass every check and then build and take one real
CMT-DeepLab train step on the synthetic records."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cmt import common
from cmt import config as config_lib
from cmt import config_checks
from cmt.trainer import train_lib
from tests.trainer.conftest import DEMO_CONFIG


def _crop(height, width):
  side = min(height, width)
  return [f'train_dataset_options.crop_size={height},{width}',
          f'train_dataset_options.min_resize_value={side}',
          f'train_dataset_options.max_resize_value={side}']


_CHEAP = ['train_dataset_options.batch_size=2',
          'trainer_options.loss_options.instance_discrimination_loss.'
          'sample_count=32',
          'trainer_options.steps_per_loop=1',
          'trainer_options.save_summaries_steps=1']

UNUSUAL = {
    # Stride 32: the stage-4 transformer stage runs at twice the resolution
    # of the stage-5 one, so the assignment logits S of Eq. 6 are resized.
    'output_stride_32': ['model_options.backbone.output_stride=32',
                         *_crop(33, 33)],
    # A non-square crop, 4 heads, as many centers as ground-truth masks.
    # (Axial attention from stride 8 also runs, but triples the cost.)
    'non_square_4_heads': [
        *_crop(33, 49), 'model_options.transformer.num_heads=4',
        'model_options.transformer.num_cluster_centers=8'],
}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(UNUSUAL))
def test_an_accepted_config_takes_a_train_step(tmp_path, synthetic_records,
                                               name):
  options = config_lib.load_config(
      str(DEMO_CONFIG), params=synthetic_records,
      overrides=_CHEAP + UNUSUAL[name],
      purposes=config_checks.ALL_PURPOSES)  # what `validate` checks
  tf_keras.utils.set_random_seed(0)
  run = train_lib.build_run('train', options, str(tmp_path),
                            tf.distribute.get_strategy())
  output = run.trainer.train(tf.constant(1, tf.int32))
  assert np.isfinite(output[f'losses/{common.LOSS_TOTAL}'].numpy()), output

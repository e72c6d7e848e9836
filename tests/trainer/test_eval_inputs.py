"""Evaluation inputs by input pipeline, and the host-side join.

P input pipelines with k replicas each, one image per replica: step s of
the whole system holds exactly images s*G ... s*G + G - 1 (G = P k), each
pipeline decoding only its own, then padding; the host joins by index and
notices an index that comes back twice or never.
"""

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt import config
from cmt.data import dataset_info as dataset_info_lib
from cmt.data import eval_inputs
from cmt.tools import build_data as build_data_tool
from cmt.trainer import eval_loop
from tests.trainer.conftest import DEMO_CONFIG

NUM_IMAGES = 7


@pytest.fixture(scope='module')
def seven_images(tmp_path_factory):
  # pylint: disable=g-import-not-at-top
  from cmt.data import build_data
  from cmt.data import synthetic
  root = tmp_path_factory.mktemp('seven')
  raw, records = root / 'raw', root / 'records'
  synthetic.write_dataset(str(raw), num_train=0, num_val=NUM_IMAGES,
                          image_size=(33, 33), seed=2)
  assert build_data_tool.main(synthetic.build_data_args(
      str(raw), 'val', str(records)) + ['--num_shards=2']) == 0
  options = config.load_config(str(DEMO_CONFIG), params={
      'TRAIN_SET': 't', 'VAL_SET': str(records / 'val-*'),
      'CATEGORIES_JSON': str(raw / 'categories.json')})
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  return options.eval_dataset_options, info


@pytest.mark.parametrize('pipelines, replicas_per_pipeline', [
    (1, 1), (2, 2), (3, 2), (4, 2)])
def test_each_step_holds_the_next_global_batch_of_images(
    seven_images, pipelines, replicas_per_pipeline):
  dataset_options, info = seven_images
  replicas = pipelines * replicas_per_pipeline
  iterators = [iter(eval_inputs.build_device_dataset(
      dataset_options, info, tf.distribute.InputContext(
          pipelines, p, replicas))) for p in range(pipelines)]
  steps = -(-NUM_IMAGES // replicas) + 1  # and one of padding only
  for step in range(steps):
    # As tf.distribute hands a pipeline's batches to its replicas in turn.
    batches = [next(it) for it in iterators
               for _ in range(replicas_per_pipeline)]
    index = np.concatenate([b[common.EVAL_INDEX].numpy() for b in batches])
    valid = np.concatenate([b[common.IMAGE_VALID].numpy() for b in batches])
    expected = range(step * replicas,
                     min((step + 1) * replicas, NUM_IMAGES))
    assert sorted(index[valid]) == list(expected), (step, index)
    assert (index[~valid] == -1).all()


class _Example:

  def __init__(self, index):
    self.index = index


def test_host_data_joins_by_index_and_refuses_repeats():
  host = eval_loop.HostData(lambda: (_Example(i) for i in range(4)))
  assert [host.pop(i).index for i in (1, 0, 2)] == [1, 0, 2]
  assert not host.all_popped()
  with pytest.raises(ValueError, match='index 0 came back from the device '
                                       'twice'):
    host.pop(0)
  assert host.pop(3).index == 3
  assert host.all_popped()
  with pytest.raises(ValueError, match='index 4 has no host-only data'):
    host.pop(4)
  host.reset()
  host.pop(1)
  assert host.first_unpopped() == 0

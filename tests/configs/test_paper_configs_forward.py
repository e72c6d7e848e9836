"""Every paper config builds and runs forward, shrunk, under XLA on CPU.

Each config keeps its switches (clustering update, reference masks,
coord-conv, stronger decoder, Axial-R104, RFN) and is narrowed with
overrides to a width and crop a 2-core CPU compiles in seconds. Configs
that differ only in crop, steps, loss, pretraining or post-processing
build the same model, so each distinct model is run once.
"""

import numpy as np
import pytest

from cmt import common
from cmt import config
from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import paper_table_rows
from cmt.evaluation import paper_tables
from cmt.model import builder
from tests.configs.test_paper_configs import CONFIGS
from tests.model import helpers

CROP = 33  # 4k + 1: logits at stride 4 are 9 x 9.

# The model tests' narrow widths, plus one block per decoder stage.
TINY = helpers.TINY + (
    'model_options.decoder.transformer_stages[0].num_blocks=1',
    'model_options.decoder.transformer_stages[1].num_blocks=1',
)


def _model_rows():
  """One row per distinct model (as `cmt-paper-tables --params` counts)."""
  found = {}
  for row in paper_table_rows.ROWS:
    options = paper_tables.load_experiment(CONFIGS, row.config)
    found.setdefault(paper_tables.model_key(options), row)
  return list(found.values())


@pytest.mark.slow
@pytest.mark.parametrize('row', _model_rows(),
                         ids=lambda r: r.config.rsplit('/', 1)[-1])
def test_config_builds_and_runs_forward_under_xla(row):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  options = paper_tables.load_experiment(CONFIGS, row.config)
  stages = len(options.model_options.decoder.transformer_stages)
  overrides = [o for o in TINY
               if 'transformer_stages[' not in o or int(
                   o.split('[')[1][0]) < stages]
  for override in overrides:
    config.apply_override(options, override)
  options.model_options.initial_checkpoint = ''
  info = dataset_info_lib.get_dataset_info(options.train_dataset_options)
  tf_keras.backend.clear_session()
  model = builder.build_model(options, info)
  images = tf.constant(
      np.random.default_rng(0).uniform(0, 255, (1, CROP, CROP, 3)),
      tf.float32)
  forward = tf.function(lambda x: model(x, training=False), jit_compile=True)
  outputs = forward(images)
  size = (CROP - 1) // 4 + 1
  centers = options.model_options.transformer.num_cluster_centers
  assert outputs[common.MASK_LOGITS].shape == (1, size, size, centers)
  assert outputs[common.CLASS_LOGITS].shape == (1, centers,
                                                info.num_classes + 1)
  clustering = options.model_options.clustering
  if clustering.reference_mask:
    assert outputs[common.REFERENCE_POINTS].shape == (
        1, centers, clustering.num_reference_points, 2)
  for value in tf.nest.flatten(outputs):
    if value.dtype.is_floating:
      assert np.isfinite(value.numpy()).all()

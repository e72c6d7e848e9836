"""Shared helpers of the model tests: tiny configs and BatchNorm setters."""

import numpy as np
import tf_keras

from cmt import config
from cmt.protos import config_pb2
from tests.conftest import REPO_ROOT

# An absolute path: the tests run from any working directory.
BASELINE = str(REPO_ROOT / 'configs' / 'coco' / 'max_deeplab' /
               'max_deeplab_s_gelu_res641_100k.textproto')
PLACEHOLDERS = {'INIT_CHECKPOINT': 'unused', 'TRAIN_SET': 'unused',
                'VAL_SET': 'unused'}

# Narrow enough for XLA on 2 CPU cores in seconds; every switch intact.
TINY = (
    'model_options.backbone.width_multiplier=0.0625',
    'model_options.backbone.num_blocks=1,1,1,1',
    'model_options.transformer.num_cluster_centers=8',
    # Matching gives each ground-truth mask its own center.
    'train_dataset_options.max_num_masks=8',
    'model_options.transformer.memory_channels=16',
    'model_options.transformer.num_heads=2',
    'model_options.transformer.feed_forward_channels=16',
    'model_options.heads.pixel_space_head_channels=16',
    'model_options.heads.pixel_space_output_channels=8',
    'model_options.heads.res3_projection_channels=8',
    'model_options.heads.res2_projection_channels=8',
    'model_options.heads.semantic_head_channels=16',
    'model_options.heads.aspp_channels=16',
    'model_options.heads.semantic_decoder_channels=16',
)
CLUSTERING = ('model_options.clustering.clustering_update=true',)
LOCATION = ('model_options.clustering.reference_mask=true',
            'model_options.clustering.coord_conv=true')
STRONGER_DECODER = (
    'model_options.backbone.dual_path_in_backbone=false',
    'model_options.decoder.transformer_stages[0].backbone_stage=5',
    'model_options.decoder.transformer_stages[0].num_blocks=3',
    'model_options.decoder.transformer_stages[1].backbone_stage=4',
    'model_options.decoder.transformer_stages[1].num_blocks=3',
)
R104 = ('model_options.backbone.name=AXIAL_RESNET_104',)
RFN = ('model_options.recursive_feature_network=true',)


def load(*overrides, check=True) -> config_pb2.ExperimentOptions:
  return config.load_config(BASELINE, params=PLACEHOLDERS,
                            overrides=overrides, check=check)


def randomise_batch_norms(layer: tf_keras.layers.Layer, seed: int = 0):
  """Random gamma, beta, moving mean and variance in every BatchNorm, so a
  test sees whether each normalisation runs over the right axes."""
  rng = np.random.default_rng(seed)
  for sub in layer._flatten_layers():  # pylint: disable=protected-access
    if isinstance(sub, tf_keras.layers.BatchNormalization):
      shape = sub.gamma.shape
      sub.gamma.assign(rng.uniform(0.5, 1.5, shape))
      sub.beta.assign(rng.normal(0, 0.1, shape))
      sub.moving_mean.assign(rng.normal(0, 0.1, shape))
      sub.moving_variance.assign(rng.uniform(0.5, 1.5, shape))


def batch_norm_numpy(x: np.ndarray, layer, axes) -> np.ndarray:
  """Inference BatchNorm of `layer` with its parameters living on `axes` of x."""
  shape = [1] * x.ndim
  for axis in axes:
    shape[axis] = x.shape[axis]
  assert int(np.prod(shape)) == int(np.prod(layer.gamma.shape)), (
      shape, layer.gamma.shape)
  get = lambda v: v.numpy().reshape(shape)
  return ((x - get(layer.moving_mean)) /
          np.sqrt(get(layer.moving_variance) + layer.epsilon) *
          get(layer.gamma) + get(layer.beta))


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)

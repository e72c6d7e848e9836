"""Where each variable of our model lives in a DeepLab2 checkpoint.

DeepLab2 (google-research/deeplab2) names variables by its layers'
attributes; ours are named by our layers' attributes. `deeplab2_name(path)`
rewrites the object path of one of our variables (as the checkpoint saver
walks it, e.g. `model/encoders/0/backbone/stages/2/1/_conv1/_conv/kernel`)
into the DeepLab2 name of the same weight (`encoder/_stage4/_block2/
_conv1_bn_act/_conv/kernel`), or None for a weight DeepLab2 does not have.
Both stacks of a Recursive Feature Network map their backbones to the same
names (`model/encoders/1/backbone/...` too reads `encoder/...`).
The rewrite works on names and structure only (stage, block and layer
indices), never on shapes, so it serves every width and depth.

Layout conventions that differ (`Conversion`):
  * DeepLab2's 1x1 Conv1D kernels are [1, in, out] (ours [in, out]); its
    memory (cluster centers) is [1, N, C] (ours [N, C]).
  * DeepLab2's class head puts void LAST, its channel k is the k-th class of
    (thing classes, then stuff classes), and a constant void bias
    log((K - 1) * 0.9 / 0.1) is added at run time (K channels). Ours puts void
    FIRST, channel c is class c, and the same constant starts in the bias
    (`heads.void_prior_bias`); the converter permutes channels and folds the
    constant into the bias, so the logits are the same.
"""

import dataclasses
import math
import re
from typing import Callable, List, Optional, Sequence

import numpy as np

# DeepLab2 adds log((K - 1) * prior / (1 - prior)) to the void logit at run
# time with this prior (max_deeplab.add_bias_towards_void).
DEEPLAB2_VOID_PRIOR = 0.9

# Our leaf layer attribute -> DeepLab2's, inside a ConvNormAct /
# Dense1DNormAct / BatchNorm wrapper.
_LEAF = {
    '_conv/kernel': '_conv/kernel',
    '_conv/depthwise_kernel': '_depthwise_conv/depthwise_kernel',
    '_dense/kernel': '_conv/kernel',
}
_BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')

_STEM = ('_conv1_bn_act', '_conv2_bn_act', '_conv3_bn')
_BLOCK = {'_conv1': '_conv1_bn_act', '_conv3': '_conv3_bn',
          '_shortcut': '_shortcut'}
_AXIAL = {'_qkv_norm': '_batch_norm_qkv',
          '_similarity_norm': '_batch_norm_similarity',
          '_retrieval_norm': '_batch_norm_retrieved_output',
          '_query_rpe': '_query_rpe', '_key_rpe': '_key_rpe',
          '_value_rpe': '_value_rpe'}
_TRANSFORMER = {
    '_center_conv1': '_memory_conv1_bn_act',
    '_center_qkv': '_memory_qkv_conv_bn',
    '_center_conv3': '_memory_conv3_bn',
    '_ffn1': '_memory_ffn_conv1_bn_act',
    '_ffn2': '_memory_ffn_conv2_bn',
    '_pixel_conv1': '_pixel_conv1_bn_act',
    '_pixel_qkv': '_pixel_qkv_conv_bn',
    '_pixel_conv3': '_pixel_conv3_bn',
    '_center_similarity_norm': '_memory_attention/_batch_norm_similarity',
    '_center_retrieval_norm': '_memory_attention/_batch_norm_retrieved_value',
    '_pixel_similarity_norm': '_pixel_attention/_batch_norm_similarity',
    '_pixel_retrieval_norm': '_pixel_attention/_batch_norm_retrieved_value',
}


def _wrapped(rest: str) -> Optional[str]:
  """`_conv/kernel`, `_norm/gamma`, ... inside a conv + BN wrapper."""
  if rest in _LEAF:
    return _LEAF[rest]
  parts = rest.split('/')
  if len(parts) == 2 and parts[0] == '_norm' and parts[1] in _BN:
    return '_batch_norm/' + parts[1]
  return None


def _batch_norm(rest: str) -> Optional[str]:
  return rest if rest in _BN else None


def _join(prefix: str, inner: Optional[str]) -> Optional[str]:
  return None if inner is None else f'{prefix}/{inner}'


def _residual_block(prefix: str, rest: str) -> Optional[str]:
  """`blocks.ResidualBlock` (conv or axial)."""
  head, _, tail = rest.partition('/')
  if head in _BLOCK:
    return _join(f'{prefix}/{_BLOCK[head]}', _wrapped(tail))
  if head != '_spatial':
    return None
  axis, _, inner = tail.partition('/')
  if axis in ('_height_axis', '_width_axis'):
    if inner == 'qkv_kernel':
      return f'{prefix}/_attention/{axis}/qkv_kernel'
    layer, _, leaf = inner.partition('/')
    if layer in _AXIAL:
      mapped = ('embeddings' if leaf == 'embeddings' and 'rpe' in layer
                else _batch_norm(leaf))
      return _join(f'{prefix}/_attention/{axis}/{_AXIAL[layer]}', mapped)
    return None
  return _join(f'{prefix}/_conv2_bn_act', _wrapped(tail))


def _transformer_layer(prefix: str, rest: str) -> Optional[str]:
  head, _, tail = rest.partition('/')
  if head not in _TRANSFORMER:
    return None
  inner = _batch_norm(tail) if head.endswith('_norm') else _wrapped(tail)
  return _join(f'{prefix}/{_TRANSFORMER[head]}', inner)


def _separable(prefix: str, rest: str) -> Optional[str]:
  """`heads.SeparableConv` -> DeepLab2's StackedConv2DSame of one
  depthwise-separable conv."""
  head, _, tail = rest.partition('/')
  if head not in ('_depthwise', '_pointwise'):
    return None
  return _join(f'{prefix}/_conv1_bn_act/{head}', _wrapped(tail))


def _encoder(rest: str, max_deeplab_s: bool) -> Optional[str]:
  """Inside one of our stacks (`cmt.model.stack.Stack`) -> DeepLab2's `encoder/...`."""
  if rest == 'memory_feature':
    return 'encoder/memory_feature'
  match = re.fullmatch(r'backbone/stem/_convs/(\d+)/(.*)', rest)
  if match:
    index = int(match.group(1))
    return _join(f'encoder/_stem/{_STEM[index]}', _wrapped(match.group(2)))
  match = re.fullmatch(r'backbone/stages/(\d+)/(\d+)/(.*)', rest)
  if match:
    return _residual_block(f'encoder/_stage{int(match.group(1)) + 2}/'
                           f'_block{int(match.group(2)) + 1}', match.group(3))
  match = re.fullmatch(r'_backbone_layers/(\d+)/(.*)', rest)
  if match:
    return _transformer_layer(
        f'encoder/_stage5/_block{int(match.group(1)) + 1}_transformer',
        match.group(2))
  match = re.fullmatch(r'_decoder_stages/0/2/(\d+)/([01])/(.*)', rest)
  if match and max_deeplab_s:
    # MaX-DeepLab-S's one extra stage-5 group (`_stage5_extra`).
    prefix = f'encoder/_stage5_extra/_block{int(match.group(1)) + 1}'
    if match.group(2) == '0':
      return _residual_block(prefix, match.group(3))
    return _transformer_layer(prefix + '_transformer', match.group(3))
  match = re.fullmatch(r'decoder/_fuses/(\d+)/_projections/(\d+)/(.*)', rest)
  if match:
    return _join(f'encoder/_decoder_stage{int(match.group(1)) + 1}_extra_'
                 f'resized_fuse/_resized_conv_bn{int(match.group(2)) + 1}',
                 _wrapped(match.group(3)))
  match = re.fullmatch(r'decoder/_blocks/(\d+)/(.*)', rest)
  if match:
    return _residual_block(
        f'encoder/_decoder_stage{int(match.group(1)) + 1}_extra/_block1',
        match.group(2))
  return None


_SEMANTIC = (
    (r'_aspp/_conv/(.*)', 'semantic_decoder/_aspp/_conv_bn_act', _wrapped),
    (r'_aspp/_pool_conv/(.*)', 'semantic_decoder/_aspp/_aspp_pool/_conv_bn_act',
     _wrapped),
    (r'_aspp/_projection/(.*)', 'semantic_decoder/_aspp/_proj_conv_bn_act',
     _wrapped),
    (r'_res3_projection/(.*)', 'semantic_decoder/_low_level_conv1', _wrapped),
    (r'_res2_projection/(.*)', 'semantic_decoder/_low_level_conv2', _wrapped),
    (r'_res3_fuse/(.*)', 'semantic_decoder/_fusion_conv1', None),
    (r'_res2_fuse/(.*)', 'semantic_decoder/_fusion_conv2', None),
    (r'_head/_separable/(.*)', 'semantic_head_without_last_layer', None),
    (r'_head/_output/(kernel|bias)', 'semantic_last_layer', lambda x: x),
)


def _heads(path: str) -> Optional[str]:
  """Our heads (outside the encoders) -> DeepLab2's checkpoint items."""
  match = re.fullmatch(r'model/semantic_head/_aspp/_atrous_convs/(\d+)/(.*)',
                       path)
  if match:
    return _join(f'semantic_decoder/_aspp/_aspp_conv{int(match.group(1)) + 1}'
                 '/_conv_bn_act', _wrapped(match.group(2)))
  if path.startswith('model/semantic_head/'):
    rest = path[len('model/semantic_head/'):]
    for pattern, prefix, inner in _SEMANTIC:
      match = re.fullmatch(pattern, rest)
      if match:
        if inner is None:
          return _separable(prefix, match.group(1))
        return _join(prefix, inner(match.group(1)))
    return None
  for ours, theirs in (('model/center_heads/_class_feature/',
                        'encoder/_class_feature_extra'),
                       ('model/center_heads/_mask_feature/',
                        'encoder/_mask_feature_extra'),
                       ('model/center_heads/_mask_head/',
                        'transformer_mask_head')):
    if path.startswith(ours):
      return _join(theirs, _wrapped(path[len(ours):]))
  match = re.fullmatch(r'model/center_heads/_class_head/(kernel|bias)', path)
  if match:
    return 'transformer_class_head/_conv/' + match.group(1)
  match = re.fullmatch(r'model/pixel_space_head/_head/_separable/(.*)', path)
  if match:
    return _separable('pixel_space_head/conv_block', match.group(1))
  match = re.fullmatch(r'model/pixel_space_head/_head/_output/(kernel|bias)',
                       path)
  if match:
    return 'pixel_space_head/final_conv/' + match.group(1)
  match = re.fullmatch(r'model/pixel_space_head/_norm/(.*)', path)
  if match:
    return _join('pixel_space_feature_batch_norm', _batch_norm(match.group(1)))
  match = re.fullmatch(r'model/mask_logits/_norm/_norm/(.*)', path)
  if match:
    return _join('pixel_space_mask_batch_norm', _batch_norm(match.group(1)))
  return None


def deeplab2_name(path: str, max_deeplab_s: bool = True) -> Optional[str]:
  """DeepLab2's name of our variable at object path `path`, or None.

  The second stack of the Recursive Feature Network (`model/encoders/1/`)
  has DeepLab2 names for its backbone only: the same ones as the first
  stack's, so both start from the same pretrained backbone.

  Args:
    path: the variable's object path from the model root, `model/...`.
    max_deeplab_s: the model has no `decoder.transformer_stages`, so its one
      extra stage-5 group is DeepLab2's `_stage5_extra`. CMT-DeepLab's
      stronger-decoder stages have no DeepLab2 counterpart.
  """
  match = re.fullmatch(r'model/encoders/(\d+)/(.*)', path)
  if match:
    if match.group(1) != '0' and not match.group(2).startswith('backbone/'):
      return None  # DeepLab2 has no second stack (RFN) to take it from
    return _encoder(match.group(2), max_deeplab_s)
  return _heads(path)


@dataclasses.dataclass(frozen=True)
class Conversion:
  """DeepLab2 array -> ours for one variable."""
  describe: str
  convert: Callable[[np.ndarray], np.ndarray]


def class_channel_order(thing_classes: Sequence[int],
                        stuff_classes: Sequence[int]) -> List[int]:
  """For each of our class-head channels (0 = void, c = class c), the
  DeepLab2 channel: class c is at its position in things-then-stuff, void
  is last."""
  order = list(thing_classes) + list(stuff_classes)
  position = {c: k for k, c in enumerate(order)}
  return [len(order)] + [position[c] for c in range(1, len(order) + 1)]


def conversion(path: str, name: str, ours_shape: Sequence[int],
               theirs_shape: Sequence[int],
               channel_order: Optional[Sequence[int]] = None
               ) -> Optional[Conversion]:
  """How DeepLab2's array of `name` becomes our variable at `path`, or None
  when the shapes cannot correspond (the caller refuses, naming both)."""
  ours_shape, theirs_shape = list(ours_shape), list(theirs_shape)
  if name.startswith('transformer_class_head/'):
    if channel_order is None or len(channel_order) != ours_shape[-1] or (
        theirs_shape[-1] != ours_shape[-1]):
      return None
    order = np.asarray(channel_order)
    if name.endswith('/kernel'):
      if theirs_shape[1:] != ours_shape or theirs_shape[0] != 1:
        return None
      return Conversion('kernel [1, in, K] -> [in, K], void last -> first',
                        lambda a: a[0][:, order])
    void_bias = math.log((ours_shape[-1] - 1) * DEEPLAB2_VOID_PRIOR /
                         (1.0 - DEEPLAB2_VOID_PRIOR))

    def bias(a):
      a = a.astype(np.float64)
      a[-1] += void_bias
      return a[order].astype(np.float32)
    return Conversion('void last -> first, run-time void bias folded in',
                      bias)
  if theirs_shape == ours_shape:
    return Conversion('as is', lambda a: a)
  if theirs_shape == [1] + ours_shape:
    return Conversion('[1, ...] -> [...]', lambda a: a[0])
  return None

"""Reading checkpoints that DeepLab2 wrote into our model.

DeepLab2 checkpoints come in three layouts, recognised by their names:
  * TRAINER: what DeepLab2's trainer writes, `tf.train.Checkpoint(
    global_step, optimizer, backbone_optimizer, **model.checkpoint_items)`:
    `encoder/...` plus the heads (`transformer_class_head/...`,
    `pixel_space_head/...`, `semantic_decoder/...`, ...). The step and the
    optimizer slots are ignored.
  * BACKBONE: a backbone alone, `tf.train.Checkpoint(encoder=encoder)`
    (`encoder/...` and nothing of the heads), e.g. ImageNet checkpoints.
  * MODEL_GARDEN: a backbone in TF Model Garden form,
    `tf.train.Checkpoint(backbone=tf.train.Checkpoint(_encoder=encoder))`
    (`backbone/_encoder/...`).

`plan` pairs every variable of our model with the DeepLab2 variable of the
same weight (`cmt.model.deeplab2_names`, by structure and name) and says
why the others stay at initialisation; `apply` assigns. Paths go through
tf.io.gfile, so gs:// works.
"""

import dataclasses
import enum
from typing import List, Optional, Tuple

from absl import logging
import tensorflow as tf

from cmt.model import builder
from cmt.model import deeplab2_names
from cmt.trainer import checkpoints

_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
_HEAD_ITEMS = ('transformer_class_head/', 'transformer_mask_head/',
               'pixel_space_head/', 'pixel_space_feature_batch_norm/',
               'pixel_space_mask_batch_norm/', 'semantic_decoder/',
               'semantic_head_without_last_layer/', 'semantic_last_layer/')
_BOOKKEEPING = ('global_step', 'save_counter', 'optimizer/',
                'backbone_optimizer/')


class Layout(enum.Enum):
  TRAINER = 'DeepLab2 trainer checkpoint'
  BACKBONE = 'DeepLab2 backbone checkpoint (encoder/...)'
  MODEL_GARDEN = 'DeepLab2 backbone checkpoint, TF Model Garden form'


def variable_names(reader) -> List[str]:
  """Names of the saved variables (optimizer slots and the object graph
  left out), without DeepLab2's `/.ATTRIBUTES/VARIABLE_VALUE`."""
  return sorted(key[:-len(_SUFFIX)]
                for key in reader.get_variable_to_shape_map()
                if key.endswith(_SUFFIX) and '.OPTIMIZER_SLOT' not in key)


def detect_layout(names: List[str]) -> Optional[Layout]:
  """The DeepLab2 layout these names follow, or None (e.g. our own)."""
  if any(n.startswith('backbone/_encoder/') for n in names):
    return Layout.MODEL_GARDEN
  if not any(n.startswith('encoder/') for n in names):
    return None
  if any(n.startswith(_HEAD_ITEMS) for n in names):
    return Layout.TRAINER
  return Layout.BACKBONE


@dataclasses.dataclass
class Plan:
  """What a DeepLab2 checkpoint gives each of our variables."""
  layout: Layout
  # (our path, variable, DeepLab2 name, conversion)
  mapped: List[Tuple[str, tf.Variable, str, deeplab2_names.Conversion]]
  left_at_init: List[Tuple[str, str]]  # (our path, reason)
  unused: List[str]  # DeepLab2 variables nothing of ours reads
  # (our path, our shape, DeepLab2 name, its shape)
  mismatched: List[Tuple[str, list, str, list]]

  def restored_paths(self) -> List[str]:
    return [path for path, _, _, _ in self.mapped]


def _reason_unmapped(path: str) -> str:
  if path.startswith('model/encoders/') and not path.startswith(
      'model/encoders/0/'):
    return 'second stack of the Recursive Feature Network (no DeepLab2 ' \
           'counterpart)'
  if '/_decoder_stages/' in path:
    return 'CMT-DeepLab stronger-decoder stage (no DeepLab2 counterpart)'
  return 'CMT-DeepLab layer (no DeepLab2 counterpart)'


def plan(model, reader, options, dataset_info, backbone_only: bool = False
         ) -> Plan:
  """Pairs our variables with the checkpoint's (see the module docstring).

  Args:
    model: a built `CMTDeepLab`.
    reader: `tf.train.load_checkpoint` of a DeepLab2 checkpoint.
    backbone_only: restore the backbone (`builder.pretrained_variables`)
      only; the rest is left at initialisation with that reason.
  Raises ValueError when the names follow no DeepLab2 layout.
  """
  names = variable_names(reader)
  layout = detect_layout(names)
  if layout is None:
    raise ValueError('not a DeepLab2 checkpoint (no encoder/... or '
                     'backbone/_encoder/... variables)')
  shapes = {n: reader.get_variable_to_shape_map()[n + _SUFFIX] for n in names}
  max_deeplab_s = not options.model_options.decoder.transformer_stages
  info = dataset_info
  thing = [c for c in range(1, info.num_classes + 1) if info.is_thing(c)]
  stuff = [c for c in range(1, info.num_classes + 1) if not info.is_thing(c)]
  order = deeplab2_names.class_channel_order(thing, stuff)
  in_scope = ({id(v) for v in builder.pretrained_variables(model)}
              if backbone_only else None)
  pairs = []
  checkpoints._walk(None, None, model, ['model'], set(), pairs)  # pylint: disable=protected-access
  result = Plan(layout, [], [], [], [])
  used = set()
  for path, variable, _ in pairs:
    if in_scope is not None and id(variable) not in in_scope:
      result.left_at_init.append((path, 'outside restore_scope BACKBONE'))
      continue
    name = deeplab2_names.deeplab2_name(path, max_deeplab_s)
    if name is None:
      result.left_at_init.append((path, _reason_unmapped(path)))
      continue
    stored = ('backbone/_' + name if layout == Layout.MODEL_GARDEN and
              name.startswith('encoder/') else name)
    if stored not in shapes:
      result.left_at_init.append(
          (path, f'{name} is not in this checkpoint ({layout.value})'))
      continue
    used.add(stored)
    ours_shape = variable.shape.as_list()
    convert = deeplab2_names.conversion(path, name, ours_shape,
                                        shapes[stored], order)
    if convert is None:
      result.mismatched.append((path, ours_shape, stored, shapes[stored]))
      continue
    result.mapped.append((path, variable, stored, convert))
  result.unused = [n for n in names if n not in used and
                   not n.startswith(_BOOKKEEPING)]
  return result


def apply(result: Plan, reader):
  for _, variable, name, convert in result.mapped:
    value = convert.convert(reader.get_tensor(name + _SUFFIX))
    variable.assign(tf.cast(value, variable.dtype))


def warm_start(model, reader, resolved: str, options, dataset_info,
               backbone_only: bool) -> checkpoints.WarmStartReport:
  """`initial_checkpoint` pointing at a DeepLab2 checkpoint: restores what
  maps (shape mismatches, e.g. a class head for another class count, are
  skipped and logged as the WHOLE_MODEL scope does for our checkpoints)."""
  result = plan(model, reader, options, dataset_info, backbone_only)
  apply(result, reader)
  for path, ours, name, theirs in result.mismatched:
    logging.warning('initial_checkpoint: skipped %s %s (DeepLab2 %s %s)',
                    path, ours, name, theirs)
  for path, reason in result.left_at_init:
    if 'is not in this checkpoint' in reason:
      logging.warning('initial_checkpoint: %s left at initialisation: %s',
                      path, reason)
  backbone = {id(v) for v in builder.pretrained_variables(model)}
  restored_ids = {id(v) for _, v, _, _ in result.mapped}
  logging.info(
      'initial_checkpoint %s (%s): restored %d variables, %d of %d backbone '
      'variables; %d skipped with other shapes; %d left at initialisation; '
      '%d DeepLab2 variables unused', resolved, result.layout.value,
      len(result.mapped), len(backbone & restored_ids), len(backbone),
      len(result.mismatched), len(result.left_at_init), len(result.unused))
  if not result.mapped:
    raise ValueError(f'model_options.initial_checkpoint = {resolved!r}: no '
                     'variable of the model could be restored from it')
  missing = [path for path, reason in result.left_at_init
             if 'is not in this checkpoint' in reason]
  return checkpoints.WarmStartReport(
      result.restored_paths(),
      [(p, o, t) for p, o, _, t in result.mismatched], missing,
      len(result.left_at_init) - len(missing))

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
same weight (`cmt.deeplab2.names`, by structure and name; both stacks
of a Recursive Feature Network read the one backbone) and says why the
others stay at initialisation; `refusal` says, in one line, why the
checkpoint cannot start the model (a variable in scope it lacks, unless
declared absent by `model_options.initial_checkpoint_num_blocks`); `apply`
assigns. Paths go through tf.io.gfile, so gs:// works.

DeepLab2 itself reads an initial checkpoint best effort
(`runner_utils.maybe_load_checkpoint`: `expect_partial()` and
`assert_nontrivial_match()`, so one matching variable suffices) and gives
the backbone learning rate to every encoder variable outside its
transformer, extra and memory layers, restored or not; it has no Recursive
Feature Network. Here the scope is checked instead, so that a layout
difference or a deeper backbone cannot silently train from scratch at the
backbone rate.
"""

import collections
import dataclasses
import enum
from typing import List, Optional, Set, Tuple

from absl import logging
import tensorflow as tf

from cmt.deeplab2 import names as deeplab2_names
from cmt.model import builder
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
  # In scope, with a DeepLab2 name the checkpoint does not hold, or a
  # pretrained backbone variable without one: (our path, name or None).
  missing: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  # Declared absent (`initial_checkpoint_num_blocks`) yet in the
  # checkpoint: (our path, DeepLab2 name).
  declared_but_held: List[Tuple[str, str]] = dataclasses.field(
      default_factory=list)
  in_scope: int = 0  # variables with a DeepLab2 name that the scope declares
  # Paths of the pretrained backbone variables (declared in the checkpoint)
  # that it holds.
  pretrained: Set[str] = dataclasses.field(default_factory=set)

  def restored_paths(self) -> List[str]:
    return [path for path, _, _, _ in self.mapped]

  def declared_absent(self) -> List[str]:
    return [path for path, reason in self.left_at_init
            if reason == _DECLARED_ABSENT]

  def backbone_per_stack(self) -> List[int]:
    """Backbone variables mapped in each stack (RFN: two)."""
    counts = collections.Counter(
        int(path.split('/')[2]) for path, _, _, _ in self.mapped
        if path in self.pretrained)
    return [counts[k] for k in range(max(counts, default=-1) + 1)]


_DECLARED_ABSENT = ('declared absent from the checkpoint by '
                    f'{checkpoints.PARTIAL_START_FIELD}')


def _reason_unmapped(path: str) -> str:
  if path.startswith('model/encoders/') and not path.startswith(
      'model/encoders/0/'):
    return ('second stack of the Recursive Feature Network beyond its '
            'backbone (DeepLab2 has no second stack)')
  if '/_decoder_stages/' in path:
    return 'CMT-DeepLab stronger-decoder stage (no DeepLab2 counterpart)'
  return 'CMT-DeepLab layer (no DeepLab2 counterpart)'


def plan(model, reader, options, dataset_info,
         backbone_only: Optional[bool] = None) -> Plan:
  """Pairs our variables with the checkpoint's (see the module docstring).

  Args:
    model: a built `CMTDeepLab`.
    reader: `tf.train.load_checkpoint` of a DeepLab2 checkpoint.
    backbone_only: True: the backbone of every stack is in scope
      (`restore_scope: BACKBONE`); False: every variable (`WHOLE_MODEL`);
      None: what the layout holds (a trainer checkpoint: every variable; a
      backbone checkpoint: the backbone). The backbone blocks beyond
      `model_options.initial_checkpoint_num_blocks` are declared absent.
  Raises ValueError when the names follow no DeepLab2 layout.
  """
  names = variable_names(reader)
  layout = detect_layout(names)
  if layout is None:
    raise ValueError('not a DeepLab2 checkpoint (no encoder/... or '
                     'backbone/_encoder/... variables)')
  if backbone_only is None:
    backbone_only = layout != Layout.TRAINER
  shapes = {n: reader.get_variable_to_shape_map()[n + _SUFFIX] for n in names}
  model_options = options.model_options
  max_deeplab_s = not model_options.decoder.transformer_stages
  pretrained = {id(v) for v in builder.backbone_variables(
      model, model_options.initial_checkpoint_num_blocks)}
  absent = {id(v) for v in builder.backbone_variables(model)} - pretrained
  order = _class_channel_order(dataset_info)
  result = Plan(layout, [], [], [], [])
  pairs = []
  checkpoints._walk(None, None, model, ['model'], set(), pairs)  # pylint: disable=protected-access
  for path, variable, _ in pairs:
    name = deeplab2_names.deeplab2_name(path, max_deeplab_s)
    stored = ('backbone/_' + name if layout == Layout.MODEL_GARDEN and
              name is not None and name.startswith('encoder/') else name)
    if id(variable) in absent:
      result.left_at_init.append((path, _DECLARED_ABSENT))
      if stored in shapes:
        result.declared_but_held.append((path, stored))
    elif backbone_only and id(variable) not in pretrained:
      result.left_at_init.append((path, 'outside restore_scope BACKBONE'))
    elif name is None and id(variable) not in pretrained:
      result.left_at_init.append((path, _reason_unmapped(path)))
    elif name is None or stored not in shapes:  # A pretrained one must map.
      result.in_scope += 1
      result.missing.append((path, stored))
    else:
      result.in_scope += 1
      if id(variable) in pretrained:
        result.pretrained.add(path)
      _pair(result, path, variable, (name, stored), shapes[stored], order)
  used = {name for _, _, name, _ in result.mapped}
  used.update(name for _, _, name, _ in result.mismatched)
  result.unused = [n for n in names if n not in used and
                   not n.startswith(_BOOKKEEPING)]
  return result


def _class_channel_order(dataset_info) -> List[int]:
  info = dataset_info
  classes = range(1, info.num_classes + 1)
  return deeplab2_names.class_channel_order(
      [c for c in classes if info.is_thing(c)],
      [c for c in classes if not info.is_thing(c)])


def _pair(result: Plan, path: str, variable, names: Tuple[str, str],
          theirs_shape, order):
  """Adds a variable the checkpoint holds to `mapped` or `mismatched`.
  `names`: (DeepLab2's name, the name stored in this layout)."""
  name, stored = names
  ours_shape = variable.shape.as_list()
  convert = deeplab2_names.conversion(path, name, ours_shape, theirs_shape,
                                      order)
  if convert is None:
    result.mismatched.append((path, ours_shape, stored, theirs_shape))
  else:
    result.mapped.append((path, variable, stored, convert))


def refusal(result: Plan, declared_by: str, strict_shapes: bool
            ) -> Optional[str]:
  """Why the checkpoint cannot start this model, in one line, or None.

  Refused: a variable in scope (`declared_by` says which: 'that
  restore_scope BACKBONE declares pretrained') the checkpoint lacks; a block
  declared absent that it holds; a shape that differs (`strict_shapes`:
  any; otherwise a pretrained backbone variable's, while layers outside
  the backbone with other shapes, e.g. a class head for another class
  count, are skipped).
  """
  if result.missing:
    path, name = result.missing[0]
    return checkpoints.missing_message(
        len(result.missing), result.in_scope, declared_by,
        f'{path} (DeepLab2 {name or "has no counterpart"})')
  if result.declared_but_held:
    path, name = result.declared_but_held[0]
    return checkpoints.held_message(len(result.declared_but_held),
                                    f'{path} (DeepLab2 {name})')
  refused = [m for m in result.mismatched
             if strict_shapes or m[0] in result.pretrained]
  if refused:
    path, ours, name, theirs = refused[0]
    more = f' (and {len(refused) - 1} more)' if len(refused) > 1 else ''
    return (f'shape mismatch: our {path} is {ours}, DeepLab2 {name} is '
            f'{theirs}{more}; does the config describe the checkpoint\'s '
            'network?')
  return None


def apply(result: Plan, reader):
  for _, variable, name, convert in result.mapped:
    value = convert.convert(reader.get_tensor(name + _SUFFIX))
    variable.assign(tf.cast(value, variable.dtype))


def warm_start(model, reader, resolved: str, options, dataset_info,
               backbone_only: bool) -> checkpoints.WarmStartReport:
  """`initial_checkpoint` pointing at a DeepLab2 checkpoint: restores every
  variable `restore_scope` declares (`backbone_only`: the backbone of every
  stack) or raises ValueError in one line, before assigning anything
  (`refusal`). Layers outside the backbone with other shapes are skipped
  and logged, as the WHOLE_MODEL scope does for our checkpoints."""
  result = plan(model, reader, options, dataset_info, backbone_only)
  scope = 'BACKBONE' if backbone_only else 'WHOLE_MODEL'
  problem = refusal(result, f'that restore_scope {scope} declares pretrained',
                    strict_shapes=False)
  if problem:
    raise ValueError(problem)
  if not result.mapped:
    raise ValueError('no variable of the model could be restored from it')
  apply(result, reader)
  for path, ours, name, theirs in result.mismatched:
    logging.warning('initial_checkpoint: skipped %s %s (DeepLab2 %s %s)',
                    path, ours, name, theirs)
  per_stack = result.backbone_per_stack()
  logging.info(
      'initial_checkpoint %s (%s, restore_scope %s): restored %d variables, '
      '%d of %d backbone variables (per stack: %s); %d backbone variables '
      'start from initialisation as %s declares; %d skipped with other '
      'shapes; %d left at initialisation; %d DeepLab2 variables unused',
      resolved, result.layout.value, scope, len(result.mapped),
      sum(per_stack), len(result.pretrained) + len(result.declared_absent()),
      ', '.join(str(n) for n in per_stack), len(result.declared_absent()),
      checkpoints.PARTIAL_START_FIELD, len(result.mismatched),
      len(result.left_at_init), len(result.unused))
  return checkpoints.WarmStartReport(
      result.restored_paths(),
      [(p, o, t) for p, o, _, t in result.mismatched], [],
      len(result.left_at_init) - len(result.declared_absent()),
      result.declared_absent())

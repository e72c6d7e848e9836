"""Checkpoints: the run's own (resume) and `initial_checkpoint` (warm start).

Resume is `tf.train.CheckpointManager` over {model, optimizer}; the
optimiser carries the step (`iterations`), its slots and therefore the
learning-rate schedule position. When the training data has a `seed`
(deterministic input) and runs on one device, the input iterator is
checkpointed too (with its shuffle buffer), so a resumed run sees the
batches the uninterrupted run would have seen and continues exactly; a
distributed iterator cannot be checkpointed, and there `train_lib` skips the
examples already used instead.

A warm start reads another run's checkpoint (`model_options.
initial_checkpoint`) variable by variable: the checkpoint's object graph is
walked in step with the live {model} object graph, so variables pair up by
their path (layer attribute names), not by creation order. It is strict:
every variable the scope declares pretrained is restored, or the run stops
naming the first one missing and the count, before anything is assigned.
  * `restore_scope: BACKBONE` restores exactly `pretrained_variables`: the
    backbone of every stack (`cmt.model.builder.pretrained_variables`).
  * `restore_scope: WHOLE_MODEL` restores every variable; layers outside
    the pretrained backbone whose shapes differ (a class head for another
    class count) are skipped and logged.
  * A checkpoint of one stack gives its backbone to both stacks of a
    Recursive Feature Network (the same pretrained backbone twice).
  * A deliberate partial start (an Axial-ResNet-104 from Axial-ResNet-50
    weights) is declared by `model_options.initial_checkpoint_num_blocks`:
    the backbone variables outside `pretrained_variables` start from
    initialisation, are counted in the log, and must not be in the
    checkpoint (a declaration the checkpoint contradicts is refused).
A checkpoint DeepLab2 wrote is read through `cmt.deeplab2.checkpoint`
(passed in as `foreign`), by the same rules.
"""

import collections
import dataclasses
import os
import re
from typing import Callable, Iterable, Optional

from absl import logging
import tensorflow as tf
import tf_keras

from cmt.protos import model_pb2

_OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'
_VALUE_ATTRIBUTE = 'VARIABLE_VALUE'


def build_checkpoint(model: tf_keras.Model, optimizer,
                     train_iterator=None) -> tf.train.Checkpoint:
  """{model, optimizer} and, when given, the position of the input."""
  if train_iterator is None:
    return tf.train.Checkpoint(model=model, optimizer=optimizer)
  return tf.train.Checkpoint(model=model, optimizer=optimizer,
                             train_iterator=train_iterator)


PARTIAL_START_FIELD = 'model_options.initial_checkpoint_num_blocks'
# Where our model keeps each stack's backbone.
_STACK_BACKBONE = re.compile(r'model/encoders/(\d+)/backbone/(.*)')


@dataclasses.dataclass
class WarmStartReport:
  """What a warm start did, by variable path."""
  restored: list
  shape_mismatch: list   # skipped: (path, variable shape, checkpoint shape)
  missing: list          # paths the checkpoint does not hold
  out_of_scope: int      # variables left alone by restore_scope
  # Backbone variables declared absent (PARTIAL_START_FIELD).
  declared_absent: list = dataclasses.field(default_factory=list)


def missing_message(count: int, total: int, declared_by: str,
                    first: str) -> str:
  """The one line that stops a start missing declared variables;
  `declared_by`: 'that restore_scope BACKBONE declares pretrained', ..."""
  return (f'{count} of the {total} variables {declared_by} are not in the '
          f'checkpoint, the first: {first}; declare a deliberate partial '
          f'start with {PARTIAL_START_FIELD}')


def held_message(count: int, first: str) -> str:
  """The one line that stops a partial start the checkpoint contradicts."""
  return (f'{PARTIAL_START_FIELD} declares {count} backbone variables absent '
          f'from the checkpoint, but it holds them, the first: {first}; '
          'correct or remove the declaration')


def _children(trackable) -> dict:
  # The same children the checkpoint saver walks.
  return dict(trackable._trackable_children(save_type='checkpoint'))  # pylint: disable=protected-access


def _object_graph(reader):
  from tensorflow.core.protobuf import trackable_object_graph_pb2  # pylint: disable=g-import-not-at-top
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
  return graph


def _walk(graph, node_id, live, path, seen, out):
  """Depth-first pairing of checkpoint node `node_id` with object `live`."""
  if id(live) in seen:
    return
  seen.add(id(live))
  node = graph.nodes[node_id] if node_id is not None else None
  if isinstance(live, tf.Variable) or hasattr(live, '_distributed_container'):
    key = None
    if node is not None:
      for attribute in node.attributes:
        if attribute.name == _VALUE_ATTRIBUTE:
          key = attribute.checkpoint_key
    out.append(('/'.join(path), live, key))
    return
  ckpt_children = ({c.local_name: c.node_id for c in node.children}
                   if node is not None else {})
  for name, child in _children(live).items():
    _walk(graph, ckpt_children.get(name), child, path + [name], seen, out)


def warm_start(model: tf_keras.Model, checkpoint_path: str,
               scope: int,
               pretrained_variables: Iterable[tf.Variable],
               foreign: Optional[Callable] = None) -> WarmStartReport:
  """Restores `model` from `checkpoint_path` as `restore_scope` says.

  The checkpoint holds a `model` at its root (what `cmt-train` writes) or,
  when `foreign(reader, resolved_path)` is given, it reads any other
  checkpoint (DeepLab2's, `cmt.deeplab2.checkpoint`) and returns the
  report. Raises ValueError, naming `model_options.initial_checkpoint`, when
  the path is not a checkpoint or nothing in it fits the model.
  """
  field = 'model_options.initial_checkpoint'
  resolved = resolve_checkpoint(checkpoint_path, field)
  try:
    reader = read_checkpoint(resolved)
  except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
    raise ValueError(f'{field} = {checkpoint_path!r}: cannot read checkpoint: '
                     f'{e}') from None
  if not reader.has_tensor(_OBJECT_GRAPH_KEY):
    raise ValueError(f'{field} = {checkpoint_path!r}: not an object-based '
                     '(TF2) checkpoint')
  if scope not in (model_pb2.ModelOptions.BACKBONE,
                   model_pb2.ModelOptions.WHOLE_MODEL):
    raise ValueError(f'model_options.restore_scope = {scope}: choose BACKBONE '
                     'or WHOLE_MODEL')
  graph = _object_graph(reader)
  root_children = {c.local_name: c.node_id for c in graph.nodes[0].children}
  if 'model' not in root_children and foreign is not None:
    try:
      return foreign(reader, resolved)
    except ValueError as e:
      raise ValueError(f'{field} = {checkpoint_path!r}: {e}') from None
  if 'model' not in root_children:
    raise ValueError(f'{field} = {checkpoint_path!r}: the checkpoint has no '
                     f'"model" at its root (found {sorted(root_children)})')
  pairs = []
  _walk(graph, root_children['model'], model, ['model'], set(), pairs)
  try:
    report, assignments = _plan_restore(
        _share_first_stack_backbone(pairs),
        reader.get_variable_to_shape_map(), scope,
        {id(v) for v in pretrained_variables})
  except ValueError as e:
    raise ValueError(f'{field} = {checkpoint_path!r}: {e}') from None
  if not assignments:
    raise ValueError(f'{field} = {checkpoint_path!r}: no variable of the '
                     'model could be restored from it')
  for variable, key in assignments:
    variable.assign(tf.cast(reader.get_tensor(key), variable.dtype))
  _log_report(report, resolved, scope)
  return report


def _share_first_stack_backbone(pairs):
  """(path, variable, key) pairs where a stack the checkpoint does not have
  (the second of a Recursive Feature Network, from a one-stack checkpoint)
  takes its backbone from the checkpoint's first stack."""
  saved_stacks = {path.split('/')[2] for path, _, key in pairs
                  if key is not None and path.startswith('model/encoders/')}
  first_stack = {}
  for path, _, key in pairs:
    match = _STACK_BACKBONE.fullmatch(path)
    if match and match.group(1) == '0':
      first_stack[match.group(2)] = key
  shared = []
  for path, variable, key in pairs:
    match = _STACK_BACKBONE.fullmatch(path)
    if key is None and match and match.group(1) not in saved_stacks:
      key = first_stack.get(match.group(2))
    shared.append((path, variable, key))
  return shared


def _plan_restore(pairs, shapes: dict, scope: int, pretrained: set):
  """(report, [(variable, checkpoint key)]) for the (path, variable, key)
  pairs as `scope` declares (module docstring); ValueError, one line, for
  a declared variable the checkpoint lacks or a pretrained one with another
  shape, or a declared-absent one it holds."""
  backbone = {id(v) for path, v, _ in pairs if _STACK_BACKBONE.fullmatch(path)}
  absent = backbone - pretrained
  report = WarmStartReport([], [], [], 0)
  assignments, held, refused = [], [], []
  for path, variable, key in pairs:
    if id(variable) in absent:
      (held if key is not None else report.declared_absent).append(path)
    elif scope == model_pb2.ModelOptions.BACKBONE and (
        id(variable) not in pretrained):
      report.out_of_scope += 1
    elif key is None:
      report.missing.append(path)
    elif list(shapes[key]) != variable.shape.as_list():
      mismatch = (path, variable.shape.as_list(), list(shapes[key]))
      (refused if id(variable) in pretrained else
       report.shape_mismatch).append(mismatch)
    else:
      assignments.append((variable, key))
      report.restored.append(path)
  _refuse(report, held, refused, scope)
  return report, assignments


def _refuse(report: WarmStartReport, held: list, refused: list, scope: int):
  """ValueError in one line when the plan leaves a declared variable out."""
  if report.missing:
    total = (len(report.missing) + len(report.restored) +
             len(report.shape_mismatch) + len(refused))
    scope_name = model_pb2.ModelOptions.RestoreScope.Name(scope)
    raise ValueError(missing_message(
        len(report.missing), total,
        f'that restore_scope {scope_name} declares pretrained',
        report.missing[0]))
  if held:
    raise ValueError(held_message(len(held), held[0]))
  if refused:
    path, ours, theirs = refused[0]
    raise ValueError(f'{path} is {ours} in the model, {theirs} in the '
                     f'checkpoint ({len(refused)} pretrained variables with '
                     'other shapes); does the config describe the '
                     'checkpoint\'s network?')


def _log_report(report: WarmStartReport, resolved: str, scope: int):
  for path, live_shape, ckpt_shape in report.shape_mismatch:
    logging.warning('initial_checkpoint: skipped %s (model %s, checkpoint %s)',
                    path, live_shape, ckpt_shape)
  per_stack = collections.Counter(
      match.group(1) for match in map(_STACK_BACKBONE.fullmatch,
                                      report.restored) if match)
  logging.info('initial_checkpoint %s (restore_scope %s): restored %d '
               'variables (backbone per stack: %s), skipped %d with other '
               'shapes, %d outside the scope, %d backbone variables start '
               'from initialisation as %s declares', resolved,
               model_pb2.ModelOptions.RestoreScope.Name(scope),
               len(report.restored),
               ', '.join(str(per_stack[k]) for k in sorted(per_stack)) or '-',
               len(report.shape_mismatch), report.out_of_scope,
               len(report.declared_absent), PARTIAL_START_FIELD)


def build_checkpoint_manager(checkpoint: tf.train.Checkpoint, directory: str,
                             step_counter: tf.Variable, interval: int,
                             max_to_keep: int,
                             init_fn=None) -> tf.train.CheckpointManager:
  if interval < 1:
    raise ValueError('trainer_options.save_checkpoints_steps must be >= 1, '
                     f'got {interval}')
  if max_to_keep < 1:
    raise ValueError('trainer_options.num_checkpoints_to_keep must be >= 1, '
                     f'got {max_to_keep}')
  return tf.train.CheckpointManager(
      checkpoint, directory=directory, max_to_keep=max_to_keep,
      step_counter=step_counter, checkpoint_interval=interval,
      init_fn=init_fn)


def resolve_checkpoint(path: str, field: str) -> str:
  """A checkpoint prefix (local or a URL); a directory means its latest
  checkpoint: the one its `checkpoint` file names or, without that file (a
  downloaded DeepLab2 checkpoint), its only `*.index` or the highest
  `ckpt-N` among them. Callers read by this prefix (`read_checkpoint`).
  ValueError naming `field` (the flag or config field) otherwise."""
  if not path:
    raise ValueError(f'{field} is empty')
  if tf.io.gfile.exists(path + '.index'):
    return path
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path) or _only_or_highest_prefix(
        path, field)
    if latest is None:
      raise ValueError(f'{field}={path}: no checkpoint in this directory')
    return latest
  raise ValueError(f'{field}={path}: not a checkpoint ({path}.index does '
                   'not exist)')


def read_checkpoint(prefix: str):
  """A reader of the checkpoint at `prefix` (`resolve_checkpoint`).
  `tf.train.load_checkpoint` would first ask whether `prefix` is a folder,
  which some file systems (ram://) answer yes for any prefix of a name."""
  return tf.compat.v1.train.NewCheckpointReader(prefix)


def _only_or_highest_prefix(directory: str, field: str) -> Optional[str]:
  """The checkpoint prefix of `directory`'s `*.index` files: the only one,
  or the highest step N of several `NAME-N`; None if there is none."""
  prefixes = sorted(name[:-len('.index')].rstrip('/')
                    for name in tf.io.gfile.listdir(directory)
                    if name.endswith('.index'))
  if len(prefixes) > 1:
    steps = [re.fullmatch(r'.*-(\d+)', p) for p in prefixes]
    if not all(steps):
      raise ValueError(f'{field}={directory}: several checkpoints and no '
                       f'`checkpoint` file naming one ({", ".join(prefixes)});'
                       ' give the prefix')
    prefixes = [max(zip((int(m.group(1)) for m in steps), prefixes))[1]]
  return os.path.join(directory, prefixes[0]) if prefixes else None


def latest_step(directory: str) -> Optional[int]:
  path = tf.train.latest_checkpoint(directory)
  return None if path is None else int(path.rsplit('-', 1)[-1])


# TensorFlow writes checkpoint `ckpt-N` into `ckpt-N_temp/` and merges it
# into `ckpt-N.index` / `.data-*` at the end; a process killed in between
# leaves the folder behind.
_UNFINISHED_SAVE = re.compile(r'^ckpt-\d+_temp$')


def remove_unfinished_saves(directory: str) -> list[str]:
  """Deletes the `ckpt-N_temp/` folders an interrupted save left in
  `directory`; returns their paths. Only the writer of `directory` (the
  training chief, before it saves) may call this."""
  if not tf.io.gfile.isdir(directory):
    return []
  removed = []
  for name in sorted(tf.io.gfile.listdir(directory)):
    name = name.rstrip('/')
    path = os.path.join(directory, name)
    if _UNFINISHED_SAVE.match(name) and tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
      removed.append(path)
  if removed:
    logging.info('removed %d unfinished checkpoint save(s): %s', len(removed),
                 ', '.join(removed))
  return removed

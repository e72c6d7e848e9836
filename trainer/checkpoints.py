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
their path (layer attribute names), not by creation order.
  * `restore_scope: BACKBONE` restores only `pretrained_variables(model)`.
  * `restore_scope: WHOLE_MODEL` restores every variable whose shape
    matches; the others (a class head for another class count) are skipped
    and logged.
A checkpoint DeepLab2 wrote is read through `trainer.deeplab2_checkpoint`
(passed in as `foreign`).
"""

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


@dataclasses.dataclass
class WarmStartReport:
  """What a warm start did, by variable path."""
  restored: list
  shape_mismatch: list   # (path, variable shape, checkpoint shape)
  missing: list          # paths the checkpoint does not hold
  out_of_scope: int      # variables left alone by restore_scope


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
  checkpoint (DeepLab2's, `trainer.deeplab2_checkpoint`) and returns the
  report. Raises ValueError, naming `model_options.initial_checkpoint`, when
  the path is not a checkpoint or nothing in it fits the model.
  """
  field = 'model_options.initial_checkpoint'
  resolved = resolve_checkpoint(checkpoint_path, field)
  try:
    reader = tf.train.load_checkpoint(resolved)
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

  in_scope = None
  if scope == model_pb2.ModelOptions.BACKBONE:
    in_scope = {id(v) for v in pretrained_variables}
  report = _restore_matching(pairs, reader, in_scope)
  _log_report(report, resolved, scope)
  if not report.restored:
    raise ValueError(f'{field} = {checkpoint_path!r}: no variable of the '
                     'model could be restored from it')
  return report


def _restore_matching(pairs, reader, in_scope: Optional[set]
                      ) -> WarmStartReport:
  """Assigns each (path, variable, checkpoint key) whose variable is in
  scope (ids; None: all) and whose saved shape matches."""
  shapes = reader.get_variable_to_shape_map()
  report = WarmStartReport([], [], [], 0)
  for path, variable, key in pairs:
    if in_scope is not None and id(variable) not in in_scope:
      report.out_of_scope += 1
      continue
    if key is None:
      report.missing.append(path)
      continue
    if list(shapes[key]) != variable.shape.as_list():
      report.shape_mismatch.append((path, variable.shape.as_list(),
                                    list(shapes[key])))
      continue
    variable.assign(tf.cast(reader.get_tensor(key), variable.dtype))
    report.restored.append(path)
  return report


def _log_report(report: WarmStartReport, resolved: str, scope: int):
  for path, live_shape, ckpt_shape in report.shape_mismatch:
    logging.warning('initial_checkpoint: skipped %s (model %s, checkpoint %s)',
                    path, live_shape, ckpt_shape)
  for path in report.missing:
    logging.warning('initial_checkpoint: %s not in the checkpoint', path)
  logging.info('initial_checkpoint %s (%s): restored %d variables, skipped %d '
               'with other shapes, %d missing, %d outside the scope',
               resolved, model_pb2.ModelOptions.RestoreScope.Name(scope),
               len(report.restored), len(report.shape_mismatch),
               len(report.missing), report.out_of_scope)


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
  """A checkpoint prefix; a directory means its latest checkpoint.
  ValueError naming `field` (the flag or config field) otherwise."""
  if not path:
    raise ValueError(f'{field} is empty')
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise ValueError(f'{field}={path}: no checkpoint in this directory')
    return latest
  if not tf.io.gfile.exists(path + '.index'):
    raise ValueError(f'{field}={path}: not a checkpoint ({path}.index does '
                     'not exist)')
  return path


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

"""Subprocess body of the COCO configs' evaluation test: every distinct
evaluation setting among the given configs runs once on 8 logical CPU
devices laid out as a pod (4 simulated hosts x 2 replicas,
`standins.simulated_hosts`).

Each config keeps its evaluation settings (`eval_dataset_options` but the
records read, and `evaluator_options`) and its switches; the model is
narrowed (`tests.model.helpers.TINY`, one block per decoder stage) and
starts from random weights, and for this CPU the evaluation crop and resize
range shrink to CROP, the area limits (pixels at crop resolution) with them,
and the precision is float32 (`shrink_for_cpu`; 8 replicas at 641 to 1281
take many minutes here; a config that asks for bfloat16 would be emulated,
slowly, on this CPU).
Configs whose shrunk evaluation settings are the same share one run (the
configs' area limits scale with their crops, so the 641, 1025 and 1281
settings of one post-processing coincide), with the model of the first of
them. Writes OUTPUT_JSON: {config path: the metrics of its run's
evaluation}.

    python -m tests.trainer.eval_configs_check OUTPUT_JSON VAL_SET CONFIG...
"""

import json
import os
import sys
import tempfile

import tensorflow as tf

from cmt.protos import trainer_pb2

HOSTS, REPLICAS_PER_HOST = 4, 2
CROP = 65  # output_stride * k + 1 at output stride 16


def load_tiny(path: str, val_set: str):
  """The config with VAL_SET / TRAIN_SET filled, every other placeholder
  empty, and the model narrowed."""
  # pylint: disable=g-import-not-at-top
  from cmt import config as config_lib
  from tests.model import helpers
  with tf.io.gfile.GFile(path) as f:
    names = {p.name for p in config_lib.find_placeholders(f.read())}
  params = {name: '' for name in names}
  params.update(VAL_SET=val_set, TRAIN_SET=val_set)
  options = config_lib.load_config(path, params=params,
                                   overrides=helpers.TINY)
  for stage in options.model_options.decoder.transformer_stages:
    stage.num_blocks = 1
  return options


def shrink_for_cpu(options):
  """The crop and resize range to CROP, the area limits by the ratio of
  crop areas (rounded); float32 (the paper configs' own precision; bfloat16
  is emulated and slow on this CPU)."""
  dataset = options.eval_dataset_options
  height, width = dataset.crop_size
  evaluator = options.evaluator_options
  for field in ('thing_area_limit', 'stuff_area_limit'):
    setattr(evaluator, field,
            round(getattr(evaluator, field) * CROP * CROP / (height * width)))
  dataset.crop_size[:] = [CROP, CROP]
  dataset.min_resize_value = dataset.max_resize_value = CROP
  options.trainer_options.solver_options.precision = (
      trainer_pb2.SolverOptions.FLOAT32)


def evaluation_key(options) -> bytes:
  """What the evaluation depends on besides the model and the records."""
  # pylint: disable=g-import-not-at-top
  from cmt.protos import config_pb2
  settings = config_pb2.ExperimentOptions()
  settings.eval_dataset_options.CopyFrom(options.eval_dataset_options)
  settings.eval_dataset_options.ClearField('file_pattern')
  settings.evaluator_options.CopyFrom(options.evaluator_options)
  return settings.SerializeToString(deterministic=True)


def main(output_json: str, val_set: str, paths):
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * (
          HOSTS * REPLICAS_PER_HOST))
  # pylint: disable=g-import-not-at-top
  import tf_keras
  from cmt.trainer import train_lib
  from tests.trainer import standins
  strategy = standins.simulated_hosts(HOSTS, REPLICAS_PER_HOST)
  groups = {}
  for path in paths:
    options = load_tiny(path, val_set)
    shrink_for_cpu(options)
    groups.setdefault(evaluation_key(options), []).append((path, options))
  results = {}
  with tempfile.TemporaryDirectory() as model_dirs:
    for index, members in enumerate(groups.values()):
      options = members[0][1]
      tf_keras.backend.clear_session()
      with train_lib.precision_policy(options.trainer_options.solver_options):
        run = train_lib.build_run('eval', options,
                                  os.path.join(model_dirs, str(index)),
                                  strategy)
        run.evaluator.evaluate(tf.constant(-1))
      for path, _ in members:
        results[path] = run.evaluator.last_result
      print(f'{len(members)} config(s) like {members[0][0]}: '
            f'{run.evaluator.last_result["num_images"]} images',
            file=sys.stderr, flush=True)
  with open(output_json, 'w', encoding='utf-8') as f:
    json.dump(results, f)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2], sys.argv[3:])

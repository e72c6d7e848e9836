"""Subprocess body of the evaluation distribution test: one evaluation of
the tiny synthetic config (seeded initial weights, `jit_compile` on, the
config's evaluation batch of one image per replica) on one layout:

    python -m tests.trainer.eval_distribution_check OUTPUT_DIR PARAMS_JSON H R
        H simulated hosts x R replicas each (`standins.simulated_hosts`,
        TPUStrategy's single client); 1 1 is the one-device strategy.
    TF_CONFIG=... python -m tests.trainer.eval_distribution_check \\
        OUTPUT_DIR PARAMS_JSON
        one worker of a MultiWorkerMirroredStrategy cluster.

Writes OUTPUT_DIR/NAME.json (the metrics, the replica and input pipeline
counts, the dtypes of the replica function's graph inputs) and
OUTPUT_DIR/NAME.npz (every scored prediction by image name), NAME being
hosts_HxR or worker_I. (One strategy per process.)
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

OVERRIDES = [
    'trainer_options.jit_compile=true',
    'evaluator_options.post_processing=PER_PIXEL',
    'evaluator_options.thing_class_threshold=0',
    'evaluator_options.pixel_confidence_threshold=0',
    'evaluator_options.thing_area_limit=0',
    'evaluator_options.stuff_area_limit=0',
    'evaluator_options.num_summary_images=0',
]


def _strategy(argv):
  """(strategy, name) of this process's layout (module docstring)."""
  # pylint: disable=g-import-not-at-top
  from cmt.trainer import strategy as strategy_lib
  from tests.trainer import standins
  if 'TF_CONFIG' in os.environ:
    task = json.loads(os.environ['TF_CONFIG'])['task']['index']
    return strategy_lib.create_strategy(), f'worker_{task}'
  hosts, replicas = int(argv[0]), int(argv[1])
  name = f'hosts_{hosts}x{replicas}'
  if hosts * replicas == 1:
    return tf.distribute.get_strategy(), name
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * (hosts * replicas))
  return standins.simulated_hosts(hosts, replicas), name


def _recording_builders(predictions: dict, contexts: list):
  """The library's builders, recording every scored prediction and every
  input pipeline built."""
  # pylint: disable=g-import-not-at-top
  from cmt.evaluation import evaluator
  from cmt.trainer import train_lib
  builders = train_lib.default_builders()
  build_eval_dataset = builders.build_eval_dataset

  class RecordingEvaluator(evaluator.PanopticEvaluator):

    def update(self, gt_panoptic, gt_crowd, pred_panoptic, image_name,
               segment_scores=None):
      super().update(gt_panoptic, gt_crowd, pred_panoptic, image_name,
                     segment_scores)
      assert image_name not in predictions, image_name
      predictions[image_name] = np.asarray(pred_panoptic)

  def recorded_eval_dataset(options, info, input_context=None):
    contexts.append((input_context.input_pipeline_id,
                     input_context.num_input_pipelines))
    return build_eval_dataset(options, info, input_context=input_context)

  builders.make_panoptic_evaluator = RecordingEvaluator
  builders.build_eval_dataset = recorded_eval_dataset
  return builders


def main(output_dir: str, params_json: str, layout):
  strategy, name = _strategy(layout)
  # pylint: disable=g-import-not-at-top
  import tf_keras
  from cmt import config as config_lib
  from cmt.trainer import train_lib
  from tests.trainer.conftest import DEMO_CONFIG
  with open(params_json, encoding='utf-8') as f:
    params = json.load(f)
  options = config_lib.load_config(str(DEMO_CONFIG), params=params,
                                   overrides=OVERRIDES)
  predictions, contexts = {}, []
  tf_keras.utils.set_random_seed(7)
  with train_lib.precision_policy(options.trainer_options.solver_options):
    run = train_lib.build_run('eval', options,
                              os.path.join(output_dir, f'run_{name}'),
                              strategy,
                              _recording_builders(predictions, contexts))
    run.evaluator.evaluate(tf.constant(-1))
  functions = list(run.evaluator.replica_functions.values())
  concrete = [c for f in functions
              for c in f._list_all_concrete_functions()]  # pylint: disable=protected-access
  result = {
      'num_replicas': strategy.num_replicas_in_sync,
      'input_pipelines': sorted(contexts),
      'metrics': run.evaluator.last_result,
      'jit_compile': all(f._jit_compile for f in functions),  # pylint: disable=protected-access
      'num_traces': len(concrete),
      'input_dtypes': sorted({t.dtype.name for f in concrete
                              for t in f.inputs}),
  }
  with open(os.path.join(output_dir, f'{name}.json'), 'w',
            encoding='utf-8') as f:
    json.dump(result, f)
  np.savez(os.path.join(output_dir, f'{name}.npz'), **predictions)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2], sys.argv[3:])

"""Subprocess body of the evaluation distribution test: one evaluation over R
replicas.

Splits this process's CPU into R logical devices, builds `cmt-train
--mode=eval`'s run of the tiny synthetic config (seeded initial weights,
`jit_compile` on, global eval batch 4) under MirroredStrategy over them,
evaluates every image once and writes OUTPUT_DIR/replicas_R.json: the
metrics and the dtypes of the replica function's graph inputs. (One
strategy per process.)

    python -m tests.trainer.eval_distribution_check OUTPUT_DIR R PARAMS_JSON
"""

import json
import os
import sys

import tensorflow as tf

OVERRIDES = [
    'trainer_options.jit_compile=true',
    'eval_dataset_options.batch_size=4',
    'evaluator_options.post_processing=PER_PIXEL',
    'evaluator_options.thing_class_threshold=0',
    'evaluator_options.pixel_confidence_threshold=0',
    'evaluator_options.thing_area_limit=0',
    'evaluator_options.stuff_area_limit=0',
    'evaluator_options.num_summary_images=0',
]


def main(output_dir: str, replicas: int, params_json: str):
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
  # pylint: disable=g-import-not-at-top
  import tf_keras
  from cmt import config as config_lib
  from cmt.trainer import train_lib
  from tests.trainer.conftest import DEMO_CONFIG
  with open(params_json, encoding='utf-8') as f:
    params = json.load(f)
  options = config_lib.load_config(str(DEMO_CONFIG), params=params,
                                   overrides=OVERRIDES)
  devices = [d.name for d in tf.config.list_logical_devices('CPU')]
  strategy = tf.distribute.MirroredStrategy(devices)
  tf_keras.utils.set_random_seed(7)
  with train_lib.precision_policy(options.trainer_options.solver_options):
    run = train_lib.build_run('eval', options,
                              os.path.join(output_dir, f'run_{replicas}'),
                              strategy)
    run.evaluator.evaluate(tf.constant(-1))
  functions = list(run.evaluator.replica_functions.values())
  concrete = [c for f in functions
              for c in f._list_all_concrete_functions()]  # pylint: disable=protected-access
  result = {
      'num_replicas': strategy.num_replicas_in_sync,
      'metrics': run.evaluator.last_result,
      'jit_compile': all(f._jit_compile for f in functions),  # pylint: disable=protected-access
      'num_traces': len(concrete),
      'input_dtypes': sorted({t.dtype.name for f in concrete
                              for t in f.inputs}),
  }
  with open(os.path.join(output_dir, f'replicas_{replicas}.json'), 'w',
            encoding='utf-8') as f:
    json.dump(result, f)


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]), sys.argv[3])

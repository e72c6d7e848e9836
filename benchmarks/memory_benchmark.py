"""Step time and peak memory of one training step (batch 1, float32, graph
mode), with gradient recomputation off and on, beside DeepLab2's MaX-DeepLab-S.

Every measurement runs in a subprocess of its own that builds the run, takes
one step (tracing), then --steps timed steps, and reports the median step
time and its peak resident memory (ru_maxrss of the process: model, Adam
slots, the traced step and its activations, TensorFlow itself). Our models
are built exactly as `cmt-train --mode=train` builds them
(`train_step_benchmark.time_setting`: paper config, batch 1, the crop,
float32, XLA off, synthetic images); with --input fixed (the default) the
trainer's step runs on one batch held as constants, as DeepLab2's step is
measured here, so neither process holds an input pipeline; --input
pipeline feeds it from the tf.data pipeline as cmt-train does. Runs with
`model_options.recompute` set by --recompute, each value a setting for
every model or MODEL:SETTING for one model only; a setting is

  off                nothing recomputed
  all                conv, axial, transformer and decoder blocks
  config             what the paper config itself sets
  KIND[+KIND...]     those kinds: conv, axial (DeepLab2's default for
                     MaX-DeepLab-S), transformer, decoder

With --deeplab2_path (a directory holding the `deeplab2` package with its
protos compiled; never part of this repository) it also measures DeepLab2's
own MaX-DeepLab-S (its configs/coco/max_deeplab/max_deeplab_s_os16_res641_
100k.textproto at the crop, random init, drop path as configured, its
DeepLabFamilyLoss, Adam) with the same step in a tf.function, on synthetic
targets. One child runs at a time. Per crop, --rounds rounds run every
setting once each, in reverse order every other round, with a DeepLab2
child before each round and one after the last, so load from other jobs
hits them alike. Each row's ratios are against the DeepLab2 child before
it; the summary gives per setting the median step and peak over its
children and their ratios to the median of DeepLab2's.

  python benchmarks/memory_benchmark.py [--models max_s cmt_r50]
      [--crops 321 641] [--recompute off all | off max_s:axial ...]
      [--steps 3] [--rounds 1] [--deeplab2_path /tmp/deeplab2_src]
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
import train_step_benchmark  # pylint: disable=g-import-not-at-top,wrong-import-position

DEEPLAB2_CONFIG = 'configs/coco/max_deeplab/max_deeplab_s_os16_res641_100k.textproto'


def peak_rss_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def run_ours(job: dict) -> dict:
  overrides = train_step_benchmark.recompute_overrides(job['recompute'])
  _, step = train_step_benchmark.time_setting(
      train_step_benchmark.MODELS[job['model']], job['crop'], False,
      job['params'], job['steps'], overrides,
      fixed_batch=job['input'] == 'fixed')
  return {'step': step, 'peak_gb': peak_rss_gb()}


def _deeplab2_targets(crop: int, max_thing_id: int):
  """A synthetic COCO-like batch of one: 4 things on 2 stuff classes."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  semantic = np.full((1, crop, crop), 90, np.int32)
  semantic[:, crop // 2:] = 120
  thing_mask = np.full((1, crop, crop), -1, np.int32)
  thing_class = np.full((1, max_thing_id), -1, np.int32)
  for k in range(4):
    y, x = (k // 2) * crop // 2, (k % 2) * crop // 2
    box = (slice(None), slice(y + crop // 8, y + crop // 3),
           slice(x + crop // 8, x + crop // 3))
    semantic[box] = k + 1
    thing_mask[box] = k
    thing_class[0, k] = k + 1
  return {'semantic_gt': semantic,
          'semantic_loss_weight': np.ones((1, crop, crop), np.float32),
          'thing_id_mask_gt': thing_mask,
          'thing_id_class_gt': thing_class}


def run_deeplab2(job: dict) -> dict:
  """DeepLab2's MaX-DeepLab-S train step (its Trainer._train_step, without
  the data pipeline), timed like ours."""
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf
  from google.protobuf import text_format
  from deeplab2 import common
  from deeplab2 import config_pb2
  from deeplab2.data import dataset
  from deeplab2.model.loss import loss_builder
  from deeplab2.trainer import train_lib
  crop = job['crop']
  config = config_pb2.ExperimentOptions()
  with open(os.path.join(job['deeplab2_path'], 'deeplab2', DEEPLAB2_CONFIG),
            encoding='utf-8') as f:
    text_format.Parse(f.read(), config)
  config.model_options.initial_checkpoint = ''
  del config.train_dataset_options.crop_size[:]
  config.train_dataset_options.crop_size.extend([crop, crop])
  config.train_dataset_options.batch_size = 1
  info = dataset.MAP_NAME_TO_DATASET_INFO[config.train_dataset_options.dataset]
  model = train_lib.create_deeplab_model(config, info)
  train_lib.build_deeplab_model(model, [crop, crop])
  loss = loss_builder.DeepLabFamilyLoss(
      loss_options=config.trainer_options.loss_options,
      deeplab_options=config.model_options, num_classes=info.num_classes,
      ignore_label=info.ignore_label, ignore_depth=info.ignore_depth,
      thing_class_ids=info.class_has_instances_list,
      auxiliary_output_number=model.auxiliary_output_number)
  optimizer = tf.keras.optimizers.Adam(1e-3)
  rng = np.random.default_rng(0)
  inputs = {k: tf.constant(v) for k, v in _deeplab2_targets(crop, 128).items()}
  inputs[common.IMAGE] = tf.constant(
      rng.uniform(0, 255, (1, crop, crop, 3)).astype(np.float32))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      outputs = model(inputs[common.IMAGE], training=True)
      losses = loss(inputs, outputs)
      total = tf.reduce_mean(losses[common.TOTAL_LOSS])
    variables = model.trainable_variables
    gradients = tape.gradient(total, variables)
    optimizer.apply_gradients(zip(gradients, variables))
    return total

  float(step())
  times = []
  for _ in range(job['steps']):
    start = time.perf_counter()
    float(step())
    times.append(time.perf_counter() - start)
  return {'step': statistics.median(times), 'peak_gb': peak_rss_gb()}


def child(job: dict) -> int:
  result = run_deeplab2(job) if job['model'] == 'deeplab2' else run_ours(job)
  print('RESULT ' + json.dumps(result), flush=True)
  return 0


def measure(job: dict) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  if job['model'] == 'deeplab2':
    env['PYTHONPATH'] = os.pathsep.join(
        [job['deeplab2_path'], env.get('PYTHONPATH', '')])
    env['TF_USE_LEGACY_KERAS'] = '1'  # DeepLab2's tf.keras is Keras 2.
  result = subprocess.run(
      [sys.executable, __file__, '--child', json.dumps(job)],
      capture_output=True, text=True, env=env, check=False)
  for line in result.stdout.splitlines():
    if line.startswith('RESULT '):
      return json.loads(line[len('RESULT '):])
  tail = (result.stderr.strip().splitlines() or ['no output'])[-1]
  return {'error': tail[:120]}


def settings_per_model(values: list[str], models: list[str]) -> dict:
  """--recompute values -> {model: [setting, ...]} (ValueError if bad)."""
  per_model = {m: [] for m in models}
  for value in values:
    model, _, setting = value.rpartition(':')
    train_step_benchmark.recompute_overrides(setting)  # Checks the setting.
    if model and model not in per_model:
      raise ValueError(f'{value!r}: model {model!r} is not in --models')
    for m in [model] if model else models:
      per_model[m].append(setting)
  return per_model


def run_round(jobs: list[dict], results: dict) -> None:
  """Runs `jobs` one after the other and prints each, with ratios against
  the last DeepLab2 child before it."""
  reference = None
  for job in jobs:
    result = measure(job)
    line = f'{job["model"]:9s} {job["crop"]:5d} {job["recompute"]:>18s} '
    if 'error' in result:
      print(line + 'failed: ' + result['error'], flush=True)
      continue
    if job['model'] == 'deeplab2':
      reference = result
    results.setdefault((job['model'], job['crop'], job['recompute']),
                       []).append(result)
    ratios = ('' if reference is None else
              f' {result["step"] / reference["step"]:10.2f}'
              f' {result["peak_gb"] / reference["peak_gb"]:9.2f}')
    print(line + f'{result["step"]:7.2f} {result["peak_gb"]:8.2f}' + ratios,
          flush=True)


def print_summary(results: dict) -> None:
  """Per setting the medians over its children, and their ratios to the
  medians of the DeepLab2 children at the same crop."""
  print(f'\nmedians\n{"model":9s} {"crop":>5s} {"recompute":>18s} '
        f'{"step s":>7s} {"peak GB":>8s} {"step / DL2":>10s} '
        f'{"mem / DL2":>9s} children')
  medians = {key: (statistics.median(r['step'] for r in runs),
                   statistics.median(r['peak_gb'] for r in runs), len(runs))
             for key, runs in results.items()}
  for (model, crop, setting), (step, peak, count) in medians.items():
    reference = medians.get(('deeplab2', crop, 'axial'))
    ratios = ('' if reference is None else
              f' {step / reference[0]:10.2f} {peak / reference[1]:9.2f}')
    print(f'{model:9s} {crop:5d} {setting:>18s} {step:7.2f} {peak:8.2f}' +
          ratios + f' {count:8d}', flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--models', nargs='+',
                      choices=sorted(train_step_benchmark.MODELS),
                      default=['max_s', 'cmt_r50'])
  parser.add_argument('--crops', nargs='+', type=int, default=[321, 641])
  parser.add_argument('--recompute', nargs='+', default=['off', 'all'],
                      help='SETTING or MODEL:SETTING (see below)')
  parser.add_argument('--steps', type=int, default=3,
                      help='timed steps after the first')
  parser.add_argument('--input', choices=['fixed', 'pipeline'],
                      default='fixed',
                      help='our step on one fixed batch (as DeepLab2\'s) or '
                      'fed by the input pipeline, as cmt-train runs it')
  parser.add_argument('--rounds', type=int, default=1,
                      help='runs of every setting per crop, interleaved')
  parser.add_argument('--deeplab2_path',
                      help='directory holding the deeplab2 package')
  args = parser.parse_args(argv)
  if args.child:
    return child(json.loads(args.child))
  bad = [c for c in args.crops if c < 33 or (c - 1) % 4]
  if bad:
    parser.error(f'--crops must be 4k+1 >= 33, got {bad}')
  if args.steps < 1 or args.rounds < 1:
    parser.error('--steps and --rounds must be >= 1')
  try:
    per_model = settings_per_model(args.recompute, args.models)
  except ValueError as e:
    parser.error(f'--recompute: {e}')
  if args.deeplab2_path and not os.path.isfile(os.path.join(
      args.deeplab2_path, 'deeplab2', 'config_pb2.py')):
    parser.error(f'--deeplab2_path {args.deeplab2_path}: no deeplab2/'
                 'config_pb2.py there (compile its protos first)')
  print(f'load average at start: {os.getloadavg()[0]:.1f}')
  print(f'{"model":9s} {"crop":>5s} {"recompute":>18s} {"step s":>7s} '
        f'{"peak GB":>8s} {"step / DL2":>10s} {"mem / DL2":>9s}', flush=True)
  start = time.perf_counter()
  results = {}
  with tempfile.TemporaryDirectory() as folder:
    for crop in args.crops:
      params = train_step_benchmark.write_images(
          os.path.join(folder, str(crop)), crop)
      ours = [dict(model=m, recompute=r, crop=crop, steps=args.steps,
                   params=params, input=args.input)
              for m in args.models for r in per_model[m]]
      deeplab2 = [dict(model='deeplab2', recompute='axial', crop=crop,
                       steps=args.steps,
                       deeplab2_path=os.path.abspath(args.deeplab2_path))
                  ] if args.deeplab2_path else []
      for round_index in range(args.rounds):
        jobs = deeplab2 + (ours if round_index % 2 == 0 else ours[::-1])
        if round_index == args.rounds - 1:
          jobs += deeplab2
        run_round(jobs, results)
        print(f'  (round {round_index + 1} of crop {crop} done, load average '
              f'{os.getloadavg()[0]:.1f})', flush=True)
  print_summary(results)
  print(f'load average at end: {os.getloadavg()[0]:.1f}; '
        f'total {time.perf_counter() - start:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())

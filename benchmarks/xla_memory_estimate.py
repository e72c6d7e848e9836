"""Per-core training memory of the paper configs, from XLA's own memory report.

For each config, a subprocess builds the run as `cmt-train --mode=train`
does (the config's `mixed_bfloat16`, batch 1, `jit_compile` on, default
strategy, synthetic images), and has XLA compile the trainer's
compute-gradients function (forward, loss, backward) for CPU with
XLA_FLAGS=--xla_dump_to=DIR, without running it. The estimate is the
"Total bytes used" line of that module's `*memory-usage-report.txt` plus
the float32 weights and the optimiser's slot variables (Adam: 2 per
trainable weight), which live outside that module.

At --compile_crop below the config's crop, XLA's figure is scaled by the
pixel ratio (config crop / compile crop)^2 before weights and slots are
added (activations grow with the pixel count), and the line says so.

  python benchmarks/xla_memory_estimate.py [--configs FILE ...]
      [--compile_crop 641] [--keep_dumps DIR]

Without --configs: every Table 1 and Table 3 config of configs/coco/.
"""

import argparse
import glob
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
import train_step_benchmark  # pylint: disable=g-import-not-at-top,wrong-import-position

CORE_GIB = 16.0
_TOTAL = re.compile(r'Total bytes used:\s*(\d+)')


def paper_configs():
  folder = REPO_ROOT / 'configs' / 'coco' / 'cmt_deeplab'
  return sorted(str(p.relative_to(REPO_ROOT)) for p in folder.glob('*.textproto')
                if p.name.startswith(('table1', 'table3')))


def compile_child(job: dict) -> dict:
  """Builds the run and compiles compute_gradients; weights + slots bytes."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from cmt import config as config_lib
  from cmt.trainer import strategy as strategy_lib
  from cmt.trainer import train_lib
  crop = job['crop']
  overrides = [
      'train_dataset_options.batch_size=1',
      f'train_dataset_options.crop_size={crop},{crop}',
      f'train_dataset_options.min_resize_value={crop}',
      f'train_dataset_options.max_resize_value={crop}',
      'trainer_options.jit_compile=true',
  ]
  path = str(REPO_ROOT / job['config'])
  with open(path, encoding='utf-8') as f:
    params = {**{p.name: '' for p in config_lib.find_placeholders(f.read())},
              **job['params']}
  options = config_lib.load_config(path, params=params, overrides=overrides)
  strategy = strategy_lib.create_strategy('', 0)
  solver = options.trainer_options.solver_options
  with tempfile.TemporaryDirectory() as model_dir, \
      train_lib.precision_policy(solver):
    run = train_lib.build_run('train', options, model_dir, strategy)
    batch = next(iter(run.trainer.train_dataset))
    run.trainer.compute_gradients.experimental_get_compiler_ir(batch)(
        stage='optimized_hlo')
    weights = sum(v.shape.num_elements() * v.dtype.size
                  for v in run.model.weights)
    slots = sum(v.shape.num_elements() * v.dtype.size
                for v in run.trainer.optimizer.variables
                if v.shape.rank)  # iteration counters etc. are scalars
  return {'weights_bytes': weights, 'slots_bytes': slots,
          'precision': solver.precision}


def xla_total_bytes(dump_dir: str) -> int:
  """Largest 'Total bytes used' among the compute-gradients module reports."""
  totals = []
  for path in glob.glob(os.path.join(dump_dir, '*memory-usage-report.txt')):
    if 'compute_gradients' not in os.path.basename(path):
      continue
    with open(path, encoding='utf-8') as f:
      match = _TOTAL.search(f.read())
    if match:
      totals.append(int(match.group(1)))
  if not totals:
    raise RuntimeError(f'no compute_gradients memory report in {dump_dir}')
  return max(totals)


def config_crop(config: str) -> int:
  from cmt import config as config_lib  # pylint: disable=g-import-not-at-top
  path = str(REPO_ROOT / config)
  with open(path, encoding='utf-8') as f:
    params = {p.name: 'unused' for p in config_lib.find_placeholders(f.read())}
  options = config_lib.load_config(path, params=params)
  return int(options.train_dataset_options.crop_size[0])


def estimate(config: str, compile_crop: int, params: dict,
             dump_dir: str) -> dict:
  crop = config_crop(config)
  compiled = min(crop, compile_crop)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2',
             XLA_FLAGS=f'--xla_dump_to={dump_dir}')
  job = dict(config=config, crop=compiled, params=params[compiled])
  result = subprocess.run(
      [sys.executable, __file__, '--child', json.dumps(job)],
      capture_output=True, text=True, env=env, check=False)
  child = None
  for line in result.stdout.splitlines():
    if line.startswith('RESULT '):
      child = json.loads(line[len('RESULT '):])
  if child is None:
    tail = (result.stderr.strip().splitlines() or ['no output'])[-1]
    return {'error': tail[:160]}
  xla = xla_total_bytes(dump_dir)
  scale = (crop / compiled) ** 2
  gib = 2.0**30
  return {'crop': crop, 'compiled': compiled, 'xla_gib': xla / gib,
          'scaled_gib': xla * scale / gib,
          'state_gib': (child['weights_bytes'] + child['slots_bytes']) / gib,
          'estimate_gib': (xla * scale + child['weights_bytes'] +
                           child['slots_bytes']) / gib}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--configs', nargs='+', default=None)
  parser.add_argument('--compile_crop', type=int, default=641,
                      help='largest crop to compile at (4k+1)')
  parser.add_argument('--keep_dumps', help='keep the XLA dumps here')
  args = parser.parse_args(argv)
  if args.child:
    print('RESULT ' + json.dumps(compile_child(json.loads(args.child))),
          flush=True)
    return 0
  configs = args.configs or paper_configs()
  missing = [c for c in configs if not (REPO_ROOT / c).is_file()]
  if missing:
    parser.error(f'--configs: no such file {missing[0]}')
  if args.compile_crop < 33 or (args.compile_crop - 1) % 4:
    parser.error(f'--compile_crop must be 4k+1 >= 33, got {args.compile_crop}')
  print(f'{"config":45s} {"crop":>5s} {"compiled":>8s} {"XLA GiB":>8s} '
        f'{"scaled":>7s} {"w+slots":>7s} {"per core GiB":>12s} fits 16 GiB',
        flush=True)
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as folder:
    params = {}
    for config in configs:
      crop = min(config_crop(config), args.compile_crop)
      if crop not in params:
        images = os.path.join(folder, f'images{crop}')
        params[crop] = train_step_benchmark.write_images(images, crop)
        # For configs on the synthetic classes (the demo's).
        params[crop]['CATEGORIES_JSON'] = os.path.join(images,
                                                       'categories.json')
      dump_dir = os.path.join(args.keep_dumps or folder,
                              pathlib.Path(config).stem)
      result = estimate(config, args.compile_crop, params, dump_dir)
      name = pathlib.Path(config).stem
      if 'error' in result:
        print(f'{name:45s} failed: {result["error"]}', flush=True)
        continue
      how = ('' if result['compiled'] == result['crop'] else
             f' (XLA at {result["compiled"]}, x pixel ratio)')
      print(f'{name:45s} {result["crop"]:5d} {result["compiled"]:8d} '
            f'{result["xla_gib"]:8.2f} {result["scaled_gib"]:7.2f} '
            f'{result["state_gib"]:7.2f} {result["estimate_gib"]:12.2f} '
            f'{"yes" if result["estimate_gib"] <= CORE_GIB else "NO"}{how}',
            flush=True)
  print(f'total {time.perf_counter() - start:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())

"""Per-core training memory of the paper configs, from XLA's own memory report.

For each config, a subprocess builds the run as `cmt-train --mode=train`
does (the config's precision, batch 1, `jit_compile` on, default
strategy, synthetic images), and has XLA compile the trainer's
compute-gradients function (forward, loss, backward) for CPU with
XLA_FLAGS=--xla_dump_to=DIR, without running it (the process is stopped
once XLA has written its memory report, before code generation, which the
report does not need). The estimate is the
"Total bytes used" line of that module's `*memory-usage-report.txt` (its
parameters, i.e. the float32 weights, BatchNorm statistics and the batch;
its outputs, i.e. the gradients and statistics updates; its temporaries,
i.e. the activations) plus the optimiser's slot variables (Adam: 2 per
trainable weight), which live outside that module.

At --compile_crop below the config's crop, XLA's temporaries are scaled by
the pixel ratio (config crop / compile crop)^2 (activations grow with the
pixel count; weights and gradients do not), and the line says so.

With --stage4_blocks A B, a config is compiled twice, with A and with B
blocks in backbone stage 4 (`backbone.num_blocks`; the Axial-R104 differs
from the Axial-R50 only there: 24 blocks against 6), and XLA's total,
temporaries and the slots are extrapolated linearly to the config's own
count; the line says so. For networks whose compile does not fit this
machine's memory (the R104 and R104-RFN ones, 20+ GB of compiler memory).
Blocks 2..n of a stage are identical, so weights, gradients and slots are
exactly linear in n; the temporaries are XLA's packing of the activations.

  python benchmarks/xla_memory_estimate.py [--configs FILE ...]
      [--compile_crop 641] [--recompute config] [--least] [--keep_dumps DIR]
      [--stage4_blocks A B]

Without --configs: every Table 1 and Table 3 config of configs/coco/.
--recompute lists gradient-recomputation settings to compile each config
with (off, all, config = as the config says, or kinds joined by '+', e.g.
axial+transformer); with --least, settings are tried in the order given
and a config stops at the first that fits 16 GiB. Configs with the same
model, losses, crop and precision (e.g. 100k and 200k steps of one row)
are compiled once.
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
_ALLOCATION = re.compile(
    r'allocation (\d+): size ([\d.]+)(B|KiB|MiB|GiB), preallocated-temp')
_UNITS = {'B': 1, 'KiB': 2**10, 'MiB': 2**20, 'GiB': 2**30}


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
      *job['overrides'],
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
    slots = sum(v.shape.num_elements() * v.dtype.size
                for v in run.trainer.optimizer.variables
                if v.shape.rank)  # iteration counters etc. are scalars
    # Printed before compiling: the parent stops this process once XLA has
    # written the memory report (the code generation after it is not needed).
    print('RESULT ' + json.dumps({'slots_bytes': slots}), flush=True)
    batch = next(iter(run.trainer.train_dataset))
    run.trainer.compute_gradients.experimental_get_compiler_ir(batch)(
        stage='optimized_hlo')


def xla_report(dump_dir: str):
  """(total, temporary) bytes of the compute-gradients module's memory
  report (the largest if several; None if there is none yet)."""
  reports = []
  for path in glob.glob(os.path.join(dump_dir, '*memory-usage-report.txt')):
    if 'compute_gradients' not in os.path.basename(path):
      continue
    with open(path, encoding='utf-8') as f:
      text = f.read()
    match = _TOTAL.search(text)
    if match:
      # The report lists allocations in several orders: count each once.
      temps = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)]
               for m in _ALLOCATION.finditer(text)}
      reports.append((int(match.group(1)), sum(temps.values())))
  return max(reports) if reports else None


def config_options(config: str, overrides=()):
  """A config's options with every placeholder filled by a dummy (what is
  read from them here never depends on a placeholder)."""
  from cmt import config as config_lib  # pylint: disable=g-import-not-at-top
  path = str(REPO_ROOT / config)
  with open(path, encoding='utf-8') as f:
    params = {p.name: 'unused' for p in config_lib.find_placeholders(f.read())}
  return config_lib.load_config(path, params=params, overrides=list(overrides))


def config_crop(config: str) -> int:
  return int(config_options(config).train_dataset_options.crop_size[0])


def architecture_key(config: str, setting: str, compiled: int,
                     blocks=()) -> str:
  """What the compiled step depends on: model (with `blocks` overrides),
  losses, precision, the recompute setting and the crop compiled at (not
  the schedule, steps, checkpoint or the config's own crop)."""
  options = config_options(
      config, [*train_step_benchmark.recompute_overrides(setting), *blocks])
  model = options.model_options
  recomputed = [getattr(model.recompute, f)  # explicit or default alike
                for f in train_step_benchmark.RECOMPUTE_KINDS.values()]
  for field in ('initial_checkpoint', 'restore_scope', 'recompute'):
    model.ClearField(field)
  trainer = options.trainer_options
  return '|'.join(str(x) for x in (
      model, recomputed, trainer.loss_options,
      trainer.solver_options.precision, compiled))


def compile_step(config: str, compiled: int, params: dict, dump_dir: str,
                 setting: str, blocks=()) -> dict:
  """XLA's total and temporary bytes and the Adam slot bytes, or 'error'."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2',
             XLA_FLAGS=f'--xla_dump_to={dump_dir}')
  job = dict(config=config, crop=compiled, params=params,
             overrides=[*train_step_benchmark.recompute_overrides(setting),
                        *blocks])
  os.makedirs(dump_dir, exist_ok=True)
  out_path = os.path.join(dump_dir, 'child_stdout.txt')
  err_path = os.path.join(dump_dir, 'child_stderr.txt')
  with open(out_path, 'w', encoding='utf-8') as out, \
      open(err_path, 'w', encoding='utf-8') as err:
    process = subprocess.Popen(
        [sys.executable, __file__, '--child', json.dumps(job)],
        stdout=out, stderr=err, text=True, env=env)
    xla = None
    while process.poll() is None and xla is None:
      time.sleep(5)
      xla = xla_report(dump_dir)
    if process.poll() is None:  # Report written: skip code generation.
      process.terminate()
      process.wait()
  child = None
  with open(out_path, encoding='utf-8') as f:
    for line in f:
      if line.startswith('RESULT '):
        child = json.loads(line[len('RESULT '):])
  xla = xla_report(dump_dir)
  if child is None or xla is None:
    with open(err_path, encoding='utf-8') as f:
      lines = [l for l in f.read().strip().splitlines()
               if 'cuda' not in l.lower()] or ['no output']
    return {'error': lines[-1][:160]}
  return {'total': xla[0], 'temporary': xla[1], 'slots': child['slots_bytes']}


def stage_counts(config: str) -> tuple:
  """Blocks of backbone stages 2-5 of a config."""
  from cmt.model import spec  # pylint: disable=g-import-not-at-top
  backbone = config_options(config).model_options.backbone
  if backbone.layer_multiplier != 1:
    raise ValueError(f'{config}: --stage4_blocks needs layer_multiplier 1')
  return tuple(spec.num_blocks_from_options(backbone))


def blocks_override(counts: tuple, stage4: int) -> tuple:
  blocks = (counts[0], counts[1], stage4, counts[3])
  return ('model_options.backbone.num_blocks=' +
          ','.join(str(b) for b in blocks),)


def extrapolate(steps: list, blocks: list, target: int) -> dict:
  """Compile results at two stage-4 block counts -> linear at `target`."""
  errors = [s for s in steps if 'error' in s]
  if errors:
    return errors[0]
  (a, b), (low, high) = blocks, steps
  return {key: low[key] + (target - a) * (high[key] - low[key]) / (b - a)
          for key in ('total', 'temporary', 'slots')}


def estimate(compiled_step: dict, crop: int, compiled: int) -> dict:
  """GiB per core at `crop` from a step compiled at `compiled`."""
  scaled = (compiled_step['total'] +
            compiled_step['temporary'] * ((crop / compiled) ** 2 - 1))
  gib = 2.0**30
  return {'crop': crop, 'compiled': compiled,
          'xla_gib': compiled_step['total'] / gib, 'scaled_gib': scaled / gib,
          'slots_gib': compiled_step['slots'] / gib,
          'estimate_gib': (scaled + compiled_step['slots']) / gib}


def print_row(name: str, setting: str, result: dict) -> None:
  if 'error' in result:
    print(f'{name:42s} {setting:18s} failed: {result["error"]}', flush=True)
    return
  how = ', '.join(filter(None, [
      result['same_as'], result.get('extrapolated'),
      '' if result['compiled'] == result['crop'] else
      f'XLA at {result["compiled"]}, temporaries x pixel ratio']))
  print(f'{name:42s} {setting:18s} {result["crop"]:5d} '
        f'{result["xla_gib"]:8.2f} {result["scaled_gib"]:7.2f} '
        f'{result["slots_gib"]:7.2f} {result["estimate_gib"]:8.2f} '
        f'{"yes" if result["estimate_gib"] <= CORE_GIB else "NO":>4s} '
        f'{result["seconds"]:6.0f} {how}', flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--configs', nargs='+', default=None)
  parser.add_argument('--compile_crop', type=int, default=641,
                      help='largest crop to compile at (4k+1)')
  parser.add_argument('--recompute', nargs='+', default=['config'],
                      help='recompute settings to compile with')
  parser.add_argument('--least', action='store_true',
                      help='stop at the first setting that fits 16 GiB')
  parser.add_argument('--keep_dumps', help='keep the XLA dumps here')
  parser.add_argument('--stage4_blocks', nargs=2, type=int, default=None,
                      metavar=('A', 'B'),
                      help='compile with A and B stage-4 blocks and '
                      'extrapolate linearly to the config\'s own count')
  args = parser.parse_args(argv)
  if args.child:
    print('RESULT ' + json.dumps(compile_child(json.loads(args.child))),
          flush=True)
    return 0
  configs = args.configs or paper_configs()
  missing = [c for c in configs if not (REPO_ROOT / c).is_file()]
  if missing:
    parser.error(f'--configs: no such file {missing[0]}')
  if args.stage4_blocks and not 0 < args.stage4_blocks[0] < (
      args.stage4_blocks[1]):
    parser.error('--stage4_blocks: need 0 < A < B, got '
                 f'{args.stage4_blocks}')
  if args.compile_crop < 33 or (args.compile_crop - 1) % 4:
    parser.error(f'--compile_crop must be 4k+1 >= 33, got {args.compile_crop}')
  try:
    for setting in args.recompute:
      train_step_benchmark.recompute_overrides(setting)
  except ValueError as e:
    parser.error(f'--recompute: {e}')
  print(f'load average at start: {os.getloadavg()[0]:.1f}')
  print(f'{"config":42s} {"recompute":18s} {"crop":>5s} {"XLA GiB":>8s} '
        f'{"scaled":>7s} {"slots":>7s} {"core GiB":>8s} {"fits":>4s} '
        f'{"sec":>6s} how', flush=True)
  start = time.perf_counter()
  done = {}  # architecture_key -> (config name, compile_step result)
  with tempfile.TemporaryDirectory() as folder:
    params = {}
    for config in configs:
      crop = config_crop(config)
      compiled = min(crop, args.compile_crop)
      if compiled not in params:
        images = os.path.join(folder, f'images{compiled}')
        params[compiled] = train_step_benchmark.write_images(images, compiled)
        # For configs on the synthetic classes (the demo's).
        params[compiled]['CATEGORIES_JSON'] = os.path.join(images,
                                                           'categories.json')
      name = pathlib.Path(config).stem
      counts = stage_counts(config) if args.stage4_blocks else None
      for setting in args.recompute:
        began = time.perf_counter()

        def compiled_with(blocks, config=config, setting=setting,
                          compiled=compiled, name=name):
          """(compile result, name of the config it was compiled for)."""
          key = architecture_key(config, setting, compiled, blocks)
          if key in done:
            return done[key][1], done[key][0]
          tag = '-'.join(filter(None, [name, setting, *blocks]))
          step = compile_step(
              config, compiled, params[compiled],
              os.path.join(args.keep_dumps or folder, tag.replace('=', '')),
              setting, blocks)
          if 'error' not in step:
            done[key] = (name, step)
          return step, None

        if counts:
          steps = [compiled_with(blocks_override(counts, n))
                   for n in args.stage4_blocks]
          step, same_as = extrapolate(
              [s for s, _ in steps], args.stage4_blocks, counts[2]), (
                  steps[0][1])
        else:
          step, same_as = compiled_with(())
        result = step if 'error' in step else estimate(step, crop, compiled)
        result.update(seconds=time.perf_counter() - began,
                      same_as=same_as and f'compiled for {same_as}')
        if counts and 'error' not in result:
          result['extrapolated'] = (
              f'stage-4 blocks {args.stage4_blocks[0]} and '
              f'{args.stage4_blocks[1]} compiled, extrapolated to {counts[2]}')
        print_row(name, setting, result)
        if args.least and result.get('estimate_gib', 1e9) <= CORE_GIB:
          break
  print(f'load average at end: {os.getloadavg()[0]:.1f}; '
        f'total {time.perf_counter() - start:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())

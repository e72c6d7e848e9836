"""Checks the TPU VM install path in a new virtual environment, on any machine.

    python tools/check_tpu_vm_install.py [--venv=/tmp/cmt_tpu_venv]
        [--work_dir=/tmp/cmt_tpu_check] [--tf_prefix='...']

Not part of the test suite: it downloads about a gigabyte (tensorflow-tpu,
libtpu and the rest) and takes a few minutes. It

  1. creates a virtual environment (`--venv`, which must not exist) and runs
     `tools/install_tpu_vm.sh` into it;
  2. checks that the installed TensorFlow distribution is `tensorflow-tpu`
     alone: `pip list`, and `importlib.metadata` inside the environment
     (`tensorflow` not found, `tensorflow-tpu` 2.20, `libtpu` present);
  3. imports TensorFlow there and checks that the module comes from that
     environment's tensorflow-tpu;
  4. makes the synthetic dataset (`cmt-synthetic-data`, `cmt-build-data`,
     as `make demo` does) and trains
     `configs/demo/cmt_deeplab_synthetic_cpu.textproto` for 2 steps with
     `cmt-train` on the CPU, then checks that the step-2 checkpoint exists.

Steps 3 and 4 run with TPU_SKIP_MDS_QUERY=1: without a TPU, tensorflow-tpu's
TPU runtime otherwise waits minutes for the Cloud metadata server before
falling back to the CPU. With `--tf_prefix` (e.g. a wrapper that queues for
a CPU slot) they run as one command behind that prefix: this script again
with `--training_only`, which runs steps 3 and 4 on an existing `--venv`.
Exits non-zero on the first failed check, naming it.
"""

import argparse
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIG = REPO / 'configs' / 'demo' / 'cmt_deeplab_synthetic_cpu.textproto'
TWO_STEPS = (
    'trainer_options.solver_options.training_number_of_steps=2',
    'trainer_options.solver_options.warmup_steps=1',
    'trainer_options.steps_per_loop=1',
    'trainer_options.save_checkpoints_steps=2',
    'trainer_options.save_summaries_steps=1',
)
# Printed from inside the new environment: which TensorFlow distributions
# its metadata knows, and where the imported module lives.
METADATA_PROBE = """
import importlib.metadata as m
for name in ('tensorflow', 'tensorflow-cpu', 'tensorflow-tpu', 'libtpu'):
  try:
    print(name, m.version(name))
  except m.PackageNotFoundError:
    print(name, 'not installed')
"""
IMPORT_PROBE = """
import tensorflow as tf
print('tensorflow', tf.__version__, 'imported from', tf.__file__)
print('devices', [d.name for d in tf.config.list_logical_devices()])
"""


class CheckError(RuntimeError):
  """A check that failed; the message names it."""


def run(command, env=None):
  """Runs a command, echoing it, and returns its standard output."""
  command = [str(c) for c in command]
  print('$', shlex.join(command), flush=True)
  result = subprocess.run(command, env=env, capture_output=True, text=True,
                          check=False)
  if result.returncode:
    tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
    raise CheckError(f'exit status {result.returncode}: '
                     f'{shlex.join(command)}\n' + '\n'.join(tail))
  return result.stdout


def install(venv: pathlib.Path):
  """Step 1: a new virtual environment and the install script."""
  run([sys.executable, '-m', 'venv', venv])
  env = dict(os.environ, PYTHON=str(venv / 'bin' / 'python'))
  output = run(['bash', REPO / 'tools' / 'install_tpu_vm.sh'], env=env)
  print(output.strip().splitlines()[-1])


def check_distributions(venv: pathlib.Path):
  """Step 2: tensorflow-tpu is the one TensorFlow distribution."""
  python = venv / 'bin' / 'python'
  listed = run([python, '-m', 'pip', 'list'])
  tf_lines = [line for line in listed.splitlines()
              if line.lower().replace('_', '-').startswith(
                  ('tensorflow ', 'tensorflow-', 'libtpu', 'tf-keras'))]
  print('pip list:\n  ' + '\n  '.join(tf_lines))
  names = [line.split()[0].lower().replace('_', '-') for line in tf_lines]
  if 'tensorflow' in names or 'tensorflow-tpu' not in names:
    raise CheckError(f'pip list shows {names}: expected tensorflow-tpu '
                     'and no tensorflow')
  probe = run([python, '-c', METADATA_PROBE])
  print('importlib.metadata:\n  ' + '\n  '.join(probe.strip().splitlines()))
  versions = dict(line.split(' ', 1) for line in probe.strip().splitlines())
  if (versions['tensorflow'] != 'not installed'
      or versions['tensorflow-cpu'] != 'not installed'
      or not versions['tensorflow-tpu'].startswith('2.20.')
      or versions['libtpu'] == 'not installed'):
    raise CheckError(f'importlib.metadata: {versions}')


def check_training(venv: pathlib.Path, work_dir: pathlib.Path):
  """Steps 3 and 4: import, synthetic data, 2 training steps on the CPU."""
  env = dict(os.environ, TPU_SKIP_MDS_QUERY='1')
  env.pop('PYTHONPATH', None)
  bin_dir = venv / 'bin'
  probe = run([bin_dir / 'python', '-c', IMPORT_PROBE], env)
  print(probe.strip())
  if str(venv.resolve()) not in probe:
    raise CheckError(f'TensorFlow was not imported from {venv}')
  data = work_dir / 'synthetic'
  run([bin_dir / 'cmt-synthetic-data', f'--output_dir={data}',
       '--num_train=8', '--num_val=4', '--image_size=65'], env)
  for split in ('train', 'val'):
    run([bin_dir / 'cmt-build-data', f'--image_dir={data}/images/{split}',
         f'--panoptic_json={data}/panoptic_{split}.json',
         f'--panoptic_dir={data}/panoptic/{split}',
         f'--categories_json={data}/categories.json',
         f'--output_dir={data}/tfrecords', f'--split_name={split}',
         '--num_shards=2', '--num_workers=1'], env)
  model_dir = work_dir / 'run'
  run([bin_dir / 'cmt-train', f'--config_file={CONFIG}', '--mode=train',
       f'--model_dir={model_dir}',
       f'--param=TRAIN_SET={data}/tfrecords/train-*',
       f'--param=VAL_SET={data}/tfrecords/val-*',
       f'--param=CATEGORIES_JSON={data}/categories.json',
       *[f'--override={o}' for o in TWO_STEPS]], env)
  checkpoints = sorted(p.name for p in model_dir.glob('ckpt-*.index'))
  print('checkpoints:', checkpoints)
  if 'ckpt-2.index' not in checkpoints:
    raise CheckError(f'no step-2 checkpoint in {model_dir}: {checkpoints}')


def main() -> int:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--venv', type=pathlib.Path,
                      default=pathlib.Path(tempfile.gettempdir())
                      / 'cmt_tpu_venv')
  parser.add_argument('--work_dir', type=pathlib.Path,
                      default=pathlib.Path(tempfile.gettempdir())
                      / 'cmt_tpu_check')
  parser.add_argument('--tf_prefix', default='',
                      help='command put before the TensorFlow steps')
  parser.add_argument('--training_only', action='store_true',
                      help='steps 3 and 4 only, on an existing --venv')
  args = parser.parse_args()
  new_paths = [args.work_dir] + ([] if args.training_only else [args.venv])
  for path in new_paths:
    if path.exists():
      parser.error(f'{path}: exists; give a new path')
  try:
    if not args.training_only:
      install(args.venv)
      check_distributions(args.venv)
    if args.tf_prefix and not args.training_only:
      print(run([*shlex.split(args.tf_prefix), sys.executable, __file__,
                 '--training_only', f'--venv={args.venv}',
                 f'--work_dir={args.work_dir}']).strip())
      return 0
    check_training(args.venv, args.work_dir)
  except CheckError as error:
    print(f'check_tpu_vm_install: FAILED: {error}', file=sys.stderr)
    return 1
  print('check_tpu_vm_install: OK: tensorflow-tpu is the only TensorFlow; '
        'cmt-train ran 2 steps on the CPU')
  return 0


if __name__ == '__main__':
  sys.exit(main())

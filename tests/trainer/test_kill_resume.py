"""`kill -9` of `cmt-train` at random moments, then a run that resumes from
the last complete checkpoint.

Three trials on one model_dir, each a fresh `cmt-train` killed with SIGKILL:
at a random moment of start-up, while a checkpoint is being written (its
`ckpt-N_temp/` folder exists), and at a random moment between training
steps. Then the same command runs to the end: it must restore the last
complete checkpoint, finish, and leave no `ckpt-*_temp/` folder.
"""

import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.trainer.conftest import DEMO_CONFIG
from tests.trainer.conftest import param_flags

# The first step's trace is most of each start-up: the demo model without
# its clustering switches, at crop 33, traces faster (and saves and restores
# as the full one does).
SMALL_RUN = ['--override=model_options.clustering.clustering_update=false',
             '--override=model_options.clustering.reference_mask=false',
             '--override=model_options.clustering.coord_conv=false',
             '--override=trainer_options.loss_options.'
             'instance_discrimination_loss.sample_count=32',
             '--override=train_dataset_options.crop_size=33,33',
             '--override=train_dataset_options.min_resize_value=33',
             '--override=train_dataset_options.max_resize_value=33',
             '--override=train_dataset_options.batch_size=2']
# Every step is a loop and a checkpoint, so saves are frequent.
FAST_CHECKPOINTS = ['--override=trainer_options.steps_per_loop=1',
                    '--override=trainer_options.save_summaries_steps=1',
                    '--override=trainer_options.save_checkpoints_steps=1',
                    '--override=trainer_options.num_checkpoints_to_keep=2',
                    '--override=trainer_options.solver_options.warmup_steps=1']
TIMEOUT_SECONDS = 900


def _checkpoint_steps(model_dir: pathlib.Path) -> list[int]:
  return sorted(int(m.group(1)) for p in model_dir.glob('ckpt-*.index')
                if (m := re.match(r'ckpt-(\d+)\.index$', p.name)))


def _unfinished(model_dir: pathlib.Path) -> list[str]:
  return sorted(p.name for p in model_dir.glob('ckpt-*_temp'))


def _latest_complete_step(model_dir: pathlib.Path):
  """The step the `checkpoint` state file names (what a restart reads)."""
  state = model_dir / 'checkpoint'
  if not state.is_file():
    return None
  match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', state.read_text())
  return int(match.group(1)) if match else None


def _start(command) -> subprocess.Popen:
  return subprocess.Popen(command, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _wait_for(condition, process, what: str, poll: float):
  deadline = time.monotonic() + TIMEOUT_SECONDS
  while not condition():
    if process.poll() is not None:
      raise AssertionError(f'cmt-train ended before {what}:\n'
                           f'{process.stdout.read()[-3000:]}')
    if time.monotonic() > deadline:
      process.kill()
      raise AssertionError(f'timed out waiting for {what}')
    time.sleep(poll)


def _kill(process):
  os.kill(process.pid, signal.SIGKILL)
  process.wait()
  assert process.returncode == -signal.SIGKILL
  process.stdout.close()


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path, synthetic_records):
  rng = random.Random(int(os.environ.get('KILL_TEST_SEED', time.time_ns())))
  model_dir = tmp_path / 'run'
  script = pathlib.Path(sys.executable).parent / 'cmt-train'
  command = [str(script), f'--config_file={DEMO_CONFIG}', '--mode=train',
             f'--model_dir={model_dir}', *param_flags(synthetic_records),
             *SMALL_RUN, *FAST_CHECKPOINTS]
  long_run = command + [
      '--override=trainer_options.solver_options.training_number_of_steps=1000']
  moments = []

  # 1. A random moment of start-up (imports, model build, first trace).
  process = _start(long_run)
  delay = rng.uniform(1.0, 8.0)
  time.sleep(delay)
  _kill(process)
  moments.append(f'start-up + {delay:.1f} s')

  # 2. While a checkpoint is being written.
  process = _start(long_run)
  _wait_for(lambda: _unfinished(model_dir), process, 'a checkpoint save',
            poll=0.0005)
  _kill(process)
  left = _unfinished(model_dir)
  moments.append(f'during the save of {left}')
  assert left, 'the kill came after the save finished'

  # 3. A random moment once training runs again (after a new checkpoint).
  process = _start(long_run)
  seen = set(_checkpoint_steps(model_dir))
  _wait_for(lambda: set(_checkpoint_steps(model_dir)) - seen, process,
            'a new checkpoint', poll=0.05)
  delay = rng.uniform(0.0, 2.0)
  time.sleep(delay)
  _kill(process)
  moments.append(f'training + {delay:.1f} s')

  # The run that resumes, to two steps past the last complete checkpoint.
  resume_step = _latest_complete_step(model_dir)
  assert resume_step is not None, moments
  final_step = resume_step + 2
  result = subprocess.run(
      command + ['--override=trainer_options.solver_options.'
                 f'training_number_of_steps={final_step}'],
      capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
  output = result.stdout + result.stderr
  assert result.returncode == 0, (moments, output[-3000:])
  assert re.search(rf'restored.*ckpt-{resume_step}\b', output), (
      moments, output[-3000:])
  assert f'step {resume_step + 1}/{final_step}' in output, moments
  assert f'step 1/{final_step}' not in output, moments  # did not start over
  assert _latest_complete_step(model_dir) == final_step
  assert not _unfinished(model_dir), (moments, _unfinished(model_dir))


@pytest.mark.parametrize('mode,removed', [('train', True), ('eval', False)])
def test_a_training_run_removes_unfinished_saves(tmp_path, mode, removed):
  """What a killed save left (`ckpt-N_temp/`) goes when training (re)starts;
  an evaluation job beside a running trainer must not touch it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cmt.trainer import train_lib  # pylint: disable=g-import-not-at-top
  from tests.trainer import standins  # pylint: disable=g-import-not-at-top
  unfinished = tmp_path / 'ckpt-3_temp'
  unfinished.mkdir()
  (unfinished / 'part-00000-of-00001.index').write_bytes(b'partial')
  keep = tmp_path / 'notes_temp'
  keep.mkdir()
  options = standins.options(steps=2, optimizer='ADAM')
  if mode == 'eval':
    options.eval_dataset_options.CopyFrom(options.train_dataset_options)
  train_lib.build_run(mode, options, str(tmp_path),
                      tf.distribute.get_strategy(), standins.builders())
  assert unfinished.exists() != removed
  assert keep.exists()  # not a checkpoint's

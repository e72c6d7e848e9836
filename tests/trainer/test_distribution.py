"""N replicas take the same step as one device on the same global batch."""

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

# float32 sums in a different order (per-replica partial sums, all-reduce,
# SyncBatchNorm moments from per-replica sums) differ by ~1e-7 relative;
# two SGD steps with lr 0.1 keep weight differences far below this.
TOLERANCE = 1e-5


def _run(output_dir, replicas):
  result = subprocess.run(
      [sys.executable, '-m', 'tests.trainer.distribution_check',
       str(output_dir), str(replicas)], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return np.load(output_dir / f'replicas_{replicas}.npz')


@pytest.mark.slow
def test_mirrored_2_and_4_replicas_match_one_device(tmp_path):
  one = _run(tmp_path, 1)
  weights = [k for k in one.files if k.startswith('w')]
  assert float(one['max_abs_update']) > 1e-3  # the steps moved the weights
  for replicas in (2, 4):
    many = _run(tmp_path, replicas)
    assert int(many['num_replicas']) == replicas
    # Weights include the BatchNorm moving statistics (SyncBatchNorm).
    worst = max(float(np.abs(many[k] - one[k]).max()) for k in weights)
    assert worst < TOLERANCE, (replicas, worst)
    assert abs(float(many['loss']) - float(one['loss'])) < TOLERANCE


@pytest.mark.slow
def test_seeded_input_trains_and_resumes_on_2_mirrored_replicas(tmp_path):
  """Seeded input under MirroredStrategy: its iterator cannot be
  checkpointed, so the resumed run skips the examples already used and ends
  where the straight run does."""
  result = subprocess.run(
      [sys.executable, '-m', 'tests.trainer.seeded_resume_check',
       str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  log = result.stdout + result.stderr
  # Said once per run that trains with seeded input (straight, first part,
  # resumed), and the resumed run says where it resumed.
  assert log.count('its iterator cannot be checkpointed') == 3, log[-3000:]
  assert 'resuming after step 2' in log, log[-3000:]
  saved = np.load(tmp_path / 'result.npz')
  assert int(saved['replicas']) == 2
  assert int(saved['straight_step']) == int(saved['resumed_step']) == 4
  weights = sorted(k[len('straight_'):] for k in saved.files
                   if k.startswith('straight_'))
  worst = max(float(np.abs(saved[f'straight_{k}'] - saved[f'resumed_{k}'])
                    .max()) for k in weights)
  assert worst < TOLERANCE, worst
  assert 'train_dataset_options.batch_size = 7' in str(
      saved['odd_batch_error'])

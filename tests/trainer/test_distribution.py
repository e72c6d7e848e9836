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

"""Every COCO config's evaluation settings run on a pod-like layout.

8 logical CPU devices as 4 simulated hosts x 2 replicas (TPUStrategy's
single client, `standins.simulated_hosts`) evaluate the two real COCO val
images of ../shared with each config's evaluation batch (one image per
replica) and `evaluator_options`, the model narrowed, the crop shrunk and
the area limits scaled with it (`eval_configs_check`); configs with the same
(shrunk) evaluation settings share a run.
"""

import json
import subprocess
import sys

import pytest

from cmt.tools import build_data as build_data_tool
from tests.conftest import COCO_SAMPLE
from tests.conftest import REPO_ROOT
from tests.conftest import require_shared

COCO_CONFIGS = sorted(str(p) for p in
                      (REPO_ROOT / 'configs' / 'coco').glob('*/*.textproto'))


@pytest.mark.slow
def test_every_coco_config_evaluates_on_8_replicas(tmp_path):
  sample = require_shared(COCO_SAMPLE, 'the shared COCO samples')
  records = tmp_path / 'records'
  assert build_data_tool.main([
      f'--image_dir={sample / "images"}',
      f'--panoptic_json={sample / "panoptic_examples.json"}',
      f'--panoptic_dir={sample / "panoptic"}', f'--output_dir={records}',
      '--split_name=val', '--num_shards=1', '--num_workers=1']) == 0
  output = tmp_path / 'metrics.json'
  result = subprocess.run(
      [sys.executable, '-m', 'tests.trainer.eval_configs_check', str(output),
       str(records / 'val-*'), *COCO_CONFIGS], cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=1800, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads(output.read_text())
  assert sorted(metrics) == COCO_CONFIGS
  for path, figures in metrics.items():
    assert figures['num_images'] == 2, path

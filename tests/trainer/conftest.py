"""A tiny synthetic dataset, made by `cmt-synthetic-data` + `cmt-build-data`."""

import pytest

from cmt.data import synthetic
from cmt.tools import build_data as build_data_tool
from cmt.tools import synthetic_data
from tests.conftest import REPO_ROOT

DEMO_CONFIG = REPO_ROOT / 'configs' / 'demo' / 'cmt_deeplab_synthetic_cpu.textproto'


@pytest.fixture(scope='session')
def synthetic_records(tmp_path_factory):
  """8 train + 2 val images of 65 x 65 as TFRecords; the demo's --params."""
  root = tmp_path_factory.mktemp('trainer_synthetic')
  raw, records = root / 'raw', root / 'records'
  assert synthetic_data.main([f'--output_dir={raw}', '--num_train=8',
                              '--num_val=2', '--image_size=65',
                              '--seed=3']) == 0
  for split in ('train', 'val'):
    assert build_data_tool.main(
        synthetic.build_data_args(str(raw), split, str(records)) +
        ['--num_shards=2']) == 0
  return {'TRAIN_SET': str(records / 'train-*'),
          'VAL_SET': str(records / 'val-*'),
          'CATEGORIES_JSON': str(raw / 'categories.json')}


def param_flags(params: dict) -> list:
  return [f'--param={name}={value}' for name, value in params.items()]

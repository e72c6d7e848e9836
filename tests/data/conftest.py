"""Fixtures for the data tests: a tiny synthetic dataset and its TFRecords."""

import pytest

from cmt.data import build_data
from cmt.data import dataset_info
from cmt.data import synthetic


@pytest.fixture(scope='session')
def synthetic_dataset(tmp_path_factory):
  """6 train + 2 val synthetic images of 65x65, and their TFRecords."""
  root = tmp_path_factory.mktemp('synthetic')
  paths = synthetic.write_dataset(str(root / 'raw'), num_train=6, num_val=2,
                                  image_size=(65, 65), seed=1)
  info = dataset_info.from_categories_json(paths['categories_json'])
  for split in ('train', 'val'):
    build_data.build(str(root / 'raw' / 'images' / split),
                     paths[f'{split}_json'],
                     str(root / 'raw' / 'panoptic' / split),
                     str(root / 'records'), info, split_name=split,
                     num_shards=3, show_progress=False)
  return {'root': root, 'raw': root / 'raw', 'records': root / 'records',
          'info': info, **paths}

"""Shared fixtures: paths to the repository and to ../shared/data."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'
COCO_SAMPLE = SHARED_DATA / 'coco_panoptic_sample'


@pytest.fixture
def coco_sample() -> pathlib.Path:
  """The real COCO panoptic samples; skips where ../shared is absent."""
  if not COCO_SAMPLE.is_dir():
    if os.environ.get('CI'):
      pytest.fail(f'{COCO_SAMPLE} is missing; CI must have ../shared beside '
                  'the clone')
    pytest.skip(f'{COCO_SAMPLE} not found: these tests need the shared COCO '
                'samples beside the clone (../shared/data)')
  return COCO_SAMPLE


@pytest.fixture
def repo_root() -> pathlib.Path:
  return REPO_ROOT

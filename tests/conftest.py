"""Shared fixtures: paths to the repository and to ../shared/data."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / 'shared'
SHARED_DATA = SHARED / 'data'
DEEPLAB2_FIXTURES = SHARED / 'deeplab2'
COCO_SAMPLE = SHARED_DATA / 'coco_panoptic_sample'


def require_shared(path: pathlib.Path, what: str) -> pathlib.Path:
  """`path` under ../shared; where it is absent the test skips (a user's
  fresh clone), or fails in CI, which always has ../shared."""
  if not path.exists():
    if os.environ.get('CI'):
      pytest.fail(f'{path} is missing; CI must have ../shared beside the '
                  'clone')
    pytest.skip(f'{path} not found: these tests need {what} beside the '
                f'clone (../shared/{path.relative_to(SHARED)})')
  return path


@pytest.fixture
def coco_sample() -> pathlib.Path:
  """The real COCO panoptic samples; skips where ../shared is absent."""
  return require_shared(COCO_SAMPLE, 'the shared COCO samples')


@pytest.fixture
def repo_root() -> pathlib.Path:
  return REPO_ROOT

"""The DeepLab2 fixtures (../shared/deeplab2, see its README.md)."""

import os
import pathlib

import pytest

DEEPLAB2_FIXTURES = (pathlib.Path(__file__).resolve().parents[2].parent /
                     'shared' / 'deeplab2')
HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope='module')
def deeplab2_fixtures() -> pathlib.Path:
  """Checkpoints DeepLab2 wrote and its outputs; skips where absent."""
  if not DEEPLAB2_FIXTURES.is_dir():
    if os.environ.get('CI'):
      pytest.fail(f'{DEEPLAB2_FIXTURES} is missing; CI must have ../shared '
                  'beside the clone')
    pytest.skip(f'{DEEPLAB2_FIXTURES} not found: these tests need the '
                'DeepLab2 fixtures beside the clone (../shared/deeplab2)')
  return DEEPLAB2_FIXTURES

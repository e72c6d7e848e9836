"""The DeepLab2 fixtures (../shared/deeplab2, see its README.md)."""

import pathlib

import pytest

from tests import conftest

DEEPLAB2_FIXTURES = conftest.DEEPLAB2_FIXTURES
HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope='module')
def deeplab2_fixtures() -> pathlib.Path:
  """Checkpoints DeepLab2 wrote and its outputs; skips where absent."""
  return conftest.require_shared(DEEPLAB2_FIXTURES, 'the DeepLab2 fixtures')

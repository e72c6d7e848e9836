"""The wheel installs everything under `cmt` and nothing generic."""

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

from cmt.tools import commands

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
  out = tmp_path_factory.mktemp('wheel')
  subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps',
                  '--no-build-isolation', '-w', str(out), str(REPO)],
                 check=True, timeout=300, cwd=out)
  wheels = list(out.glob('cmt_deeplab-*.whl'))
  assert len(wheels) == 1, wheels
  return wheels[0]


def test_wheel_has_one_top_level_package(wheel):
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
  top_level = {n.split('/')[0] for n in names if '.dist-info/' not in n}
  assert top_level == {'cmt'}, top_level
  for required in ('cmt/protos/config_pb2.py', 'cmt/protos/config.proto',
                   'cmt/trainer/__init__.py', 'cmt/evaluation/__init__.py',
                   'cmt/configs/coco/max_deeplab/'
                   'max_deeplab_s_gelu_res641_100k.textproto'):
    assert required in names, required
  entry_points = next(n for n in names if n.endswith('entry_points.txt'))
  with zipfile.ZipFile(wheel) as archive:
    listed = archive.read(entry_points).decode()
  for command in commands.COMMANDS:
    assert f'{command} = {commands.module_of(command)}:run' in listed, command


def test_installed_wheel_imports_from_another_directory(wheel, tmp_path):
  site = tmp_path / 'site'
  subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet',
                  '--no-deps', '--target', str(site), str(wheel)],
                 check=True, timeout=300)
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = dict(os.environ, PYTHONPATH=str(site))
  code = ('import cmt, cmt.protos.config_pb2 as c, cmt.trainer, '
          'cmt.evaluation; print(cmt.__file__); '
          'print(c.ExperimentOptions().model_options.transformer.'
          'num_cluster_centers)')
  result = subprocess.run([sys.executable, '-c', code], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120,
                          check=True)
  path, centers = result.stdout.split()
  assert path.startswith(str(site)), path
  assert centers == '128'
  assert not (site / 'trainer').exists() and not (site / 'protos').exists()

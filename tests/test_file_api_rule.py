"""The modules on the training, evaluation and export path touch files only
through `tf.io.gfile` (via `cmt.file_io` / `cmt.atomic_files`), so every
path a user passes may be a gs:// URL. Python's own file APIs take a URL for
a local path (`open('gs://b/x', 'w')` fails; `os.makedirs('gs://b/x')`
makes a folder `./gs:`), so this scan of their syntax trees refuses them,
except for the few uses listed in ALLOWED with their reason.
"""

import ast
import pathlib

import pytest

from tests.conftest import REPO_ROOT

# What the training, evaluation and export commands import (cmt-train,
# cmt-export, cmt-predict, cmt-visualize, cmt-import-deeplab2,
# cmt-build-data's writing), by file. Local-only tools (cmt-evaluate's
# offline reader, cmt-synthetic-data, cmt-ablate, cmt-paper-tables, the demo)
# refuse URLs instead (`cli.local_path`).
SCANNED_FILES = (
    'cmt/atomic_files.py', 'cmt/cli.py', 'cmt/common.py', 'cmt/config.py',
    'cmt/config_checks.py', 'cmt/export.py', 'cmt/file_io.py',
    'cmt/model_checks.py', 'cmt/predict.py', 'cmt/visualize.py',
    'cmt/data/build_data.py', 'cmt/data/dataset_info.py',
    'cmt/data/eval_inputs.py', 'cmt/data/pipeline.py',
    'cmt/data/preprocessing.py', 'cmt/data/record_errors.py',
    'cmt/data/crop_targets.py', 'cmt/data/tfrecord_format.py',
    'cmt/tools/build_data.py', 'cmt/tools/config.py', 'cmt/tools/export.py',
    'cmt/tools/flags.py', 'cmt/tools/import_deeplab2.py',
    'cmt/tools/predict.py', 'cmt/tools/train.py', 'cmt/tools/visualize.py',
    'evaluation/coco_panoptic_format.py', 'evaluation/evaluator.py',
    'evaluation/panoptic_quality.py', 'evaluation/semantic_iou.py')
SCANNED_FOLDERS = ('trainer', 'cmt/deeplab2', 'cmt/model', 'cmt/vis')

# (file, function, call) -> why it may use a Python file API.
ALLOWED = {
    ('cmt/file_io.py', 'read_bytes', 'open'):
        'a local path is read without importing TensorFlow (cmt-config '
        'validate, cmt-evaluate); a URL goes through tf.io.gfile',
    ('cmt/file_io.py', 'exists', 'os.path.lexists'):
        'the same, for the check before writing (refuse_existing)',
    ('cmt/data/build_data.py', '_find_image', 'os.path.exists'):
        'cmt-build-data reads its inputs from the local disk (worker '
        'processes decode them with PIL); its flags refuse URLs',
    ('cmt/data/build_data.py', 'read_tasks', 'os.path.exists'):
        'the same local-only inputs',
    ('trainer/strategy.py', '<module>', 'import glob'):
        'TPU detection lists this machine\'s device files (/dev/accel*, '
        'the PCI bus), never a user path',
    ('trainer/strategy.py', '_tpu_pci_device', 'glob.glob'):
        'the same device files',
    ('trainer/strategy.py', '_tpu_pci_device', 'open'):
        'the same device files (PCI vendor and device ids)',
    ('trainer/strategy.py', 'visible_tpu', 'glob.glob'):
        'the same device files',
}

# Module-level functions that take or make local paths.
_FORBIDDEN_FUNCTIONS = {
    'os': {'makedirs', 'mkdir', 'rename', 'renames', 'replace', 'remove',
           'unlink', 'rmdir', 'removedirs', 'listdir', 'scandir', 'walk',
           'stat', 'lstat', 'chmod', 'symlink', 'link', 'chdir', 'getcwd'},
    'os.path': {'exists', 'lexists', 'isdir', 'isfile', 'islink', 'getsize',
                'getmtime', 'abspath', 'realpath', 'expanduser'},
    'shutil': None,  # all of it
    'tempfile': None,
    'glob': None,
    'pathlib': None,
    'np': {'save', 'savez', 'savez_compressed', 'load', 'savetxt', 'loadtxt',
           'fromfile', 'genfromtxt'},
    'numpy': {'save', 'savez', 'savez_compressed', 'load', 'savetxt',
              'loadtxt', 'fromfile', 'genfromtxt'},
    # Takes a prefix for a folder where a file system (ram://) says a prefix
    # of a name is one: checkpoints are read by prefix
    # (`checkpoints.read_checkpoint`).
    'tf.train': {'load_checkpoint'},
}
# Methods of path objects and arrays that write or read a file.
_FORBIDDEN_METHODS = {'write_text', 'write_bytes', 'touch', 'mkdir',
                      'iterdir', 'tofile'}
_FORBIDDEN_IMPORTS = {'pathlib', 'shutil', 'tempfile', 'glob'}


def _dotted(node) -> str:
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    inner = _dotted(node.value)
    return f'{inner}.{node.attr}' if inner else ''
  return ''


class _Scanner(ast.NodeVisitor):
  """Collects (function, call, line) of each Python file API use."""

  def __init__(self, uses_pil: bool):
    self.uses_pil = uses_pil
    self.function = '<module>'
    self.found = []

  def _add(self, call: str, node):
    self.found.append((self.function, call, node.lineno))

  def visit_FunctionDef(self, node):
    outer, self.function = self.function, node.name
    self.generic_visit(node)
    self.function = outer

  visit_AsyncFunctionDef = visit_FunctionDef

  def visit_Import(self, node):
    for alias in node.names:
      if alias.name.split('.')[0] in _FORBIDDEN_IMPORTS:
        self._add(f'import {alias.name}', node)

  def visit_ImportFrom(self, node):
    if (node.module or '').split('.')[0] in _FORBIDDEN_IMPORTS:
      self._add(f'from {node.module} import', node)

  def visit_Call(self, node):
    name = _dotted(node.func)
    if name == 'open':
      self._add('open', node)
    elif '.' in name:
      owner, function = name.rsplit('.', 1)
      allowed = _FORBIDDEN_FUNCTIONS.get(owner, set())
      if allowed is None or function in allowed:
        self._add(name, node)
    if isinstance(node.func, ast.Attribute):
      method = node.func.attr
      if method in _FORBIDDEN_METHODS:
        self._add(f'.{method}()', node)
      if self.uses_pil:
        self._check_pil(node, name, method)
    self.generic_visit(node)

  def _check_pil(self, node, name: str, method: str):
    """PIL reads and writes file objects only (bytes from gfile, a GFile):
    `Image.open(io.BytesIO(...))`, `image.save(f, format=...)`."""
    if name.endswith('Image.open'):
      argument = node.args[0] if node.args else None
      if not (isinstance(argument, ast.Call) and
              _dotted(argument.func).endswith('BytesIO')):
        self._add('Image.open(path)', node)
    if method == 'save' and not any(k.arg == 'format'
                                    for k in node.keywords):
      self._add('.save(path) without format= (PIL)', node)


def _scanned_paths() -> list[pathlib.Path]:
  paths = [REPO_ROOT / name for name in SCANNED_FILES]
  for folder in SCANNED_FOLDERS:
    paths += sorted((REPO_ROOT / folder).rglob('*.py'))
  return paths


def _uses(path: pathlib.Path) -> list[tuple]:
  source = path.read_text(encoding='utf-8')
  tree = ast.parse(source, str(path))
  scanner = _Scanner(uses_pil='PIL' in source)
  scanner.visit(tree)
  relative = path.relative_to(REPO_ROOT).as_posix()
  return [(relative, function, call, line)
          for function, call, line in scanner.found]


@pytest.mark.parametrize('path', _scanned_paths(),
                         ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_module_uses_no_python_file_api(path):
  found = [use for use in _uses(path) if use[:3] not in ALLOWED]
  assert not found, ('Python file API on a user path (use cmt.file_io / '
                     'cmt.atomic_files / tf.io.gfile): ' + ', '.join(
                         f'{f}:{line} {function}(): {call}'
                         for f, function, call, line in found))


def test_every_allowed_use_still_exists():
  """An entry whose use went away is removed, so the list stays short."""
  found = set()
  for path in _scanned_paths():
    found.update(use[:3] for use in _uses(path))
  assert set(ALLOWED) <= found, set(ALLOWED) - found


def test_the_scan_finds_what_it_forbids():
  source = '\n'.join([
      'import os, shutil', 'from PIL import Image',
      'def f(path, image):', '  open(path)', '  os.makedirs(path)',
      '  os.path.abspath(path)', '  shutil.rmtree(path)',
      '  image.save(path)', '  Image.open(path)',
      '  image.save(f, format="PNG")', '  Image.open(io.BytesIO(b""))',
      '  tf.io.gfile.makedirs(path)'])
  scanner = _Scanner(uses_pil=True)
  scanner.visit(ast.parse(source))
  assert [call for _, call, _ in scanner.found] == [
      'import shutil', 'open', 'os.makedirs', 'os.path.abspath',
      'shutil.rmtree', '.save(path) without format= (PIL)',
      'Image.open(path)']

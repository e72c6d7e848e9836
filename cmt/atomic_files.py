"""Writing outputs so that nothing half-written or overwritten is left.

Every file or folder a command produces is written under a temporary
sibling name (`.NAME.tmp-PID...`, same folder, so the rename is atomic)
and renamed to NAME only once complete; on any error or interruption the
temporary is removed. What already exists is replaced only when the user
asked (`--overwrite`); `refuse_existing` checks that up front, before any
work starts.
"""

import contextlib
import os
import shutil
import tempfile
from typing import Iterable, Iterator


def refuse_existing(paths: Iterable[str], flag: str = '--overwrite') -> None:
  """FileExistsError naming the first of `paths` that exists."""
  for path in paths:
    if os.path.lexists(path):
      raise FileExistsError(f'{path} exists; pass {flag} to replace it')


def _temporary_name(path: str) -> str:
  folder, name = os.path.split(os.path.abspath(path))
  stem, extension = os.path.splitext(name)
  # Keeps the extension: image writers choose the format from it.
  return os.path.join(folder, f'.{stem}.tmp-{os.getpid()}{extension}')


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path to write `path` at; renamed on success."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  temporary = _temporary_name(path)
  try:
    yield temporary
    os.replace(temporary, path)
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(temporary)


@contextlib.contextmanager
def open_atomic(path: str, mode: str = 'w', encoding: str = 'utf-8'):
  """`open(path, mode)` whose content appears at `path` only when complete."""
  with atomic_path(path) as temporary:
    with open(temporary, mode, encoding=None if 'b' in mode else encoding
              ) as f:
      yield f


def _readable_mode() -> int:
  """0o777 less the process umask: what os.makedirs would give a folder."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o777 & ~umask


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False,
                     flag: str = '--overwrite') -> Iterator[str]:
  """Yields a temporary folder to fill; it becomes `path` on success (an
  existing `path`, unless an empty folder, is replaced only with
  `overwrite`). The folder gets the
  usual permissions (mkdtemp's are 0700: unreadable to other users)."""
  path = os.path.abspath(path)
  empty_folder = (os.path.isdir(path) and not os.path.islink(path) and
                  not os.listdir(path))  # holds nothing to lose
  if not overwrite and not empty_folder:
    refuse_existing([path], flag)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  temporary = tempfile.mkdtemp(prefix=f'.{os.path.basename(path)}.tmp-',
                               dir=parent)
  try:
    yield temporary
    os.chmod(temporary, _readable_mode())
    if os.path.lexists(path):
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)
    os.rename(temporary, path)
  finally:
    if os.path.exists(temporary):
      shutil.rmtree(temporary)

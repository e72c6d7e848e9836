"""Writing outputs so that nothing half-written or overwritten is left.

Every output goes through `tf.io.gfile`, so a path may be local or a URL
(`gs://` on Cloud TPU). A file is written under a temporary sibling name
(`.NAME.tmp-PID-RANDOM`) and the FILE is renamed to NAME once complete: a
rename on local disk (atomic), a copy then delete on an object store (the
object appears whole or not at all). An object store has no atomic
directory rename (renaming a folder copies its objects one by one), so a
folder (`atomic_directory`) is filled under a temporary name and then
renamed as a whole on local disk, but moved file by file on an object
store with the file a reader takes as proof of completeness (a SavedModel's
`saved_model.pb`) moved last. On any error or interruption the temporary
is removed. What already exists is replaced only when the user asked
(`--overwrite`); `refuse_existing` checks that up front, before any work
starts.
"""

import contextlib
import os
import uuid
from typing import Iterable, Iterator, Optional

from cmt import file_io


def refuse_existing(paths: Iterable[str], flag: str = '--overwrite') -> None:
  """FileExistsError naming the first of `paths` that exists."""
  for path in paths:
    if file_io.exists(path):
      raise FileExistsError(f'{path} exists; pass {flag} to replace it')


def _temporary_name(path: str) -> str:
  """A hidden sibling of `path`, unique to this call."""
  folder, name = os.path.split(path.rstrip('/'))
  return os.path.join(folder,
                      f'.{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}')


def _make_parent(path: str):
  folder = os.path.dirname(path.rstrip('/'))
  if folder:
    file_io.gfile().makedirs(folder)


@contextlib.contextmanager
def open_atomic(path: str, mode: str = 'w'):
  """A writable file (`tf.io.gfile.GFile`; text is written as UTF-8) whose
  content appears at `path` only when complete, replacing what was there.
  Writers that take a file object write through it
  (`image.save(f, format='PNG')`)."""
  gfile = file_io.gfile()
  _make_parent(path)
  temporary = _temporary_name(path)
  try:
    with gfile.GFile(temporary, mode) as f:
      yield f
    gfile.rename(temporary, path, overwrite=True)
  except BaseException:
    if gfile.exists(temporary):
      gfile.remove(temporary)
    raise


def _is_empty_folder(path: str) -> bool:
  gfile = file_io.gfile()
  return gfile.isdir(path) and not gfile.listdir(path)


def _remove(path: str, last_file: Optional[str]):
  """Removes the file or folder at `path`; a folder's `last_file` first, so
  a reader never takes the rest for a complete output."""
  gfile = file_io.gfile()
  if not gfile.exists(path):
    return
  if not gfile.isdir(path):
    gfile.remove(path)
    return
  if last_file and gfile.exists(os.path.join(path, last_file)):
    gfile.remove(os.path.join(path, last_file))
  gfile.rmtree(path)


def _move_files(source: str, target: str, last_file: Optional[str]):
  """Moves every file under folder `source` to the same place under
  `target`, `last_file` (relative to `source`) last."""
  gfile = file_io.gfile()
  relative = []
  for folder, _, names in gfile.walk(source):
    inside = os.path.relpath(folder.rstrip('/'), source.rstrip('/'))
    relative += [os.path.normpath(os.path.join(inside, n)) for n in names]
  if last_file:
    if last_file not in relative:
      raise FileNotFoundError(f'{target}: {last_file} was not written')
    relative = [r for r in relative if r != last_file] + [last_file]
  gfile.makedirs(target)
  for name in relative:
    destination = os.path.join(target, name)
    gfile.makedirs(os.path.dirname(destination))
    gfile.rename(os.path.join(source, name), destination, overwrite=True)


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False,
                     flag: str = '--overwrite',
                     last_file: Optional[str] = None) -> Iterator[str]:
  """Yields a temporary folder (a sibling of `path`) to fill; on success its
  content becomes `path`, moved as the module docstring says (`last_file`:
  the file, relative to the folder, whose presence means the output is
  complete). An existing `path`, unless an empty folder, is replaced only
  with `overwrite`."""
  gfile = file_io.gfile()
  path = path.rstrip('/')
  if not overwrite and not _is_empty_folder(path):
    refuse_existing([path], flag)
  _make_parent(path)
  temporary = _temporary_name(path)
  gfile.makedirs(temporary)
  try:
    yield temporary
    _remove(path, last_file)
    if file_io.is_url(path):
      _move_files(temporary, path, last_file)
    else:
      gfile.rename(temporary, path)
  finally:
    if gfile.exists(temporary):
      gfile.rmtree(temporary)

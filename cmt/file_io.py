"""Reading the files a user names: local paths and URLs alike.

A URL (`scheme://...`: `gs://` on Cloud TPU, `ram://` in the tests) is read
through `tf.io.gfile`, which knows every registered file system; a local
path is read with Python's own file API, so that commands needing no
TensorFlow (`cmt-config validate`, `cmt-evaluate`) never import it (seconds
at start-up). Either way a missing or unreadable file is an OSError naming
the path. Writing goes through `cmt.atomic_files`.
"""

import errno
import os
import re

# RFC 3986 scheme, then '://'. A local path never has it ('gs:/b' does not:
# that is what os.path.abspath makes of a URL).
_URL = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


def is_url(path: str) -> bool:
  """Whether `path` names a file on a file system other than the local one
  (`gs://bucket/x`, `ram://x`)."""
  return bool(_URL.match(str(path)))


def gfile():
  """`tf.io.gfile`, imported on first use (`--help` stays fast)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def _os_error(error, path: str) -> OSError:
  """A TensorFlow file error as the OSError a local read would raise."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(error, tf.errors.NotFoundError):
    return FileNotFoundError(errno.ENOENT, 'No such file or directory', path)
  if isinstance(error, tf.errors.PermissionDeniedError):
    return PermissionError(errno.EACCES, 'Permission denied', path)
  lines = str(error.message).strip().splitlines()
  return OSError(errno.EIO, lines[0] if lines else type(error).__name__, path)


def read_bytes(path: str) -> bytes:
  """The content of file `path` (local or URL)."""
  if not is_url(path):
    with open(path, 'rb') as f:
      return f.read()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      return f.read()
  except tf.errors.OpError as error:
    raise _os_error(error, path) from None


def read_text(path: str) -> str:
  """The UTF-8 text of file `path`; UnicodeDecodeError if it is not text."""
  return read_bytes(path).decode('utf-8')


def exists(path: str) -> bool:
  """Whether anything (a file, a folder, a dangling link) is at `path`."""
  if not is_url(path):
    return os.path.lexists(path)
  return gfile().exists(path)

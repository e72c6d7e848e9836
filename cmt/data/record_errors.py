"""Turns TensorFlow's errors about bad TFRecords into one line naming them.

TensorFlow reports a truncated or corrupt record as a DataLossError without
the file's name, and a label whose class the configured categories do not
have as an index error deep inside the input pipeline. Both surface only
when the trainer or evaluator iterates the data; `explain` maps them to a
`DataError` naming the shard(s), or the image and the class count, so that
the command prints one line a user can act on.
"""

import re
import struct
from typing import Iterable, List, Optional

import tensorflow as tf

from cmt.data import pipeline
from cmt.data.errors import DataError

# A TFRecord: uint64 length, uint32 CRC of it, data, uint32 CRC of the data.
_HEADER_BYTES = 12
_FOOTER_BYTES = 4


def truncation_of(path: str) -> Optional[str]:
  """Where the record framing of TFRecord `path` breaks, or None if every
  record is whole (the checksums are not verified: TensorFlow does that)."""
  try:
    size = tf.io.gfile.stat(path).length
    with tf.io.gfile.GFile(path, 'rb') as f:
      offset, index = 0, 0
      while offset < size:
        f.seek(offset)
        header = f.read(_HEADER_BYTES)
        if len(header) < _HEADER_BYTES:
          return (f'record {index} at byte {offset} is cut short (file ends '
                  f'at byte {size})')
        (length,) = struct.unpack('<Q', header[:8])
        end = offset + _HEADER_BYTES + length + _FOOTER_BYTES
        if end > size:
          return (f'record {index} at byte {offset} needs {end - offset} '
                  f'bytes; the file ends at byte {size}')
        offset, index = end, index + 1
  except tf.errors.OpError as error:
    return f'cannot read: {error.message}'
  return None


def find_truncated_shards(paths: Iterable[str]) -> List[str]:
  """'path: where it breaks' for each truncated shard among `paths`."""
  found = []
  for path in paths:
    problem = truncation_of(path)
    if problem:
      found.append(f'{path}: {problem}')
  return found


def explain(error: tf.errors.OpError,
            datasets: dict) -> Optional[DataError]:
  """A `DataError` naming what is wrong in the records of `datasets`
  ({config field name: DatasetOptions}) that caused `error`; None if the
  error is not about them."""
  if isinstance(error, tf.errors.DataLossError):
    return _explain_data_loss(error, datasets)
  if pipeline.CLASS_RANGE_MARKER in (error.message or ''):
    return _explain_class_range(error.message, datasets)
  return None


def _explain_data_loss(error, datasets) -> Optional[DataError]:
  broken, searched = [], []
  for name, options in datasets.items():
    try:
      files = pipeline.list_files(options)
    except ValueError:
      continue
    searched.append(f'{name}.file_pattern ({len(files)} files)')
    broken.extend(find_truncated_shards(files))
  if broken:
    return DataError('truncated TFRecord shard(s): ' + '; '.join(broken) +
                     '; rebuild them with cmt-build-data')
  message = (error.message or '').strip()
  # TFRecord reads say 'truncated record at N' / 'corrupted record at N';
  # other data losses (a damaged checkpoint) are not about the records.
  if not searched or 'record at' not in message:
    return None
  reason = re.sub(r'\{\{[^}]*\}\}\s*', '', message.splitlines()[0])
  return DataError(f'a corrupt record in {" or ".join(searched)}: {reason}; '
                   'rebuild the shards with cmt-build-data')


def _explain_class_range(message: str, datasets) -> DataError:
  found = re.search(pipeline.CLASS_RANGE_MARKER +
                    r'.*?\[(\d+)\] \[(\d+)\] \[b?\'?([^\]\']*)\'?\]',
                    message, re.S)
  detail = ''
  if found:
    detail = (f': image {found.group(3)!r} has class {found.group(1)}, but '
              f'the config gives {found.group(2)} classes')
  sources = ', '.join(
      f'{name} ({options.categories_json or options.dataset}; records '
      f'{", ".join(options.file_pattern)})'
      for name, options in datasets.items())
  return DataError(
      f'the TFRecords hold classes the configured categories do not have'
      f'{detail}; they were built with other categories than {sources}: '
      'build them with the same --categories_json, or point the config at '
      'the categories they were built with')

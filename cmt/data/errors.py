"""The error of a bad dataset file.

Conversion (`build_data`, `panoptic_label`) raises it for an image, PNG or
JSON it cannot use; the trainer's input (`record_errors`) for TFRecords
that are truncated or hold classes the config does not have. Its message
names the file at fault, so a command prints it as its one error line.
`read_local_file` reads a conversion input with that error.
"""


class DataError(ValueError):
  """A dataset file that cannot be used; the message names the file."""


def read_local_file(path: str, what: str) -> bytes:
  """The bytes of a local conversion input (`cmt-build-data` refuses URLs);
  DataError naming `path` and `what` if it is missing or unreadable."""
  try:
    with open(path, 'rb') as f:
      return f.read()
  except FileNotFoundError:
    raise DataError(f'{path}: {what} is missing') from None
  except OSError as error:
    raise DataError(f'{path}: cannot read {what}: {error.strerror}') from None

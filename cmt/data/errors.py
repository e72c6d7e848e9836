"""The error of a bad dataset file.

Conversion (`build_data`, `panoptic_label`) raises it for an image, PNG or
JSON it cannot use; the trainer's input (`record_errors`) for TFRecords
that are truncated or hold classes the config does not have. Its message
names the file at fault, so a command prints it as its one error line.
"""


class DataError(ValueError):
  """A dataset file that cannot be used; the message names the file."""

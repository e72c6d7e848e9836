"""`Problems`: the accumulator of the config checks, one line per problem in
the form 'field = value: what is allowed'. Pure Python."""

import math
from typing import Iterable, List


def finite(value) -> bool:
  return not isinstance(value, float) or math.isfinite(value)


def _show(value):
  if isinstance(value, float):
    return f'{value:g}'
  return repr(value) if isinstance(value, str) else value


class Problems:
  """Collects problem lines; every check adds through these methods and a
  caller reads `lines`."""

  def __init__(self):
    self._lines: List[str] = []

  @property
  def lines(self) -> List[str]:
    return list(self._lines)

  def note(self, line: str):
    """A problem already phrased as a whole line."""
    self._lines.append(line)

  def extend(self, lines: Iterable[str]):
    self._lines.extend(lines)

  def add(self, field: str, value, requirement: str):
    self._lines.append(f'{field} = {_show(value)}: {requirement}')

  def require(self, ok: bool, field: str, value, requirement: str):
    if not ok:
      self.add(field, value, requirement)

  def at_least(self, field: str, value, minimum):
    self.require(finite(value) and value >= minimum, field, value,
                 f'must be >= {minimum}')

  def in_range(self, field: str, value, low, high, high_open=False):
    ok = finite(value) and low <= value and (
        value < high if high_open else value <= high)
    self.require(ok, field, value,
                 f'must lie in [{low}, {high}{")" if high_open else "]"}')

  def positive(self, field: str, value):
    self.require(finite(value) and value > 0, field, value,
                 'must be a finite number > 0')

  def enum_set(self, field: str, value, enum_type, unset: int):
    if value == unset:
      names = [v.name for v in enum_type.values if v.number != unset]
      self._lines.append(f'{field} = {enum_type.values_by_number[value].name}'
                         ': choose ' + ' or '.join(names))

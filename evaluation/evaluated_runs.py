"""Reads evaluated runs: every `<model_dir>/eval/metrics.json` under a folder.

The evaluator writes, per run,

  {"experiment_name": str, "config_file": str, "step": int,
   "metrics": {"pq": float, "pq_things": float, "pq_stuff": float,
               "sq": ..., "rq": ..., "n": int, ..., "ap": float | null,
               "miou": float}}

with percentages in [0, 100]. `cmt-paper-tables --runs DIR` uses the PQ
fields; a file that does not follow this shape is an error naming the file
and the field.
"""

import dataclasses
import json
import math
import pathlib
from typing import Iterable, Optional

METRICS_FILE = 'metrics.json'
EVAL_FOLDER = 'eval'
# The metrics the paper tables show, in the order they are shown.
PQ_KEYS = ('pq', 'pq_things', 'pq_stuff')


class MetricsError(ValueError):
  """A metrics.json that cannot be read; the message names the file."""


@dataclasses.dataclass(frozen=True)
class EvaluatedRun:
  metrics_file: pathlib.Path
  experiment_name: str
  config_file: str
  step: int
  pq: float
  pq_things: float
  pq_stuff: float

  @property
  def model_dir(self) -> pathlib.Path:
    return self.metrics_file.parent.parent


def _field(data: dict, key: str, kind, path, where: str = ''):
  if key not in data:
    raise MetricsError(f'{path}: missing field {where}{key!r}')
  value = data[key]
  # bool is an int in Python; it is never a valid step or percentage.
  if not isinstance(value, kind) or isinstance(value, bool):
    names = ' or '.join(k.__name__ for k in (
        kind if isinstance(kind, tuple) else (kind,)))
    raise MetricsError(f'{path}: field {where}{key!r} must be {names}, got '
                       f'{value!r}')
  return value


def load_run(metrics_file) -> EvaluatedRun:
  """Parses one metrics.json; raises MetricsError naming the file."""
  path = pathlib.Path(metrics_file)
  try:
    data = json.loads(path.read_text(encoding='utf-8'))
  except OSError as error:
    raise MetricsError(f'{path}: cannot read: {error.strerror}') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise MetricsError(f'{path}: not valid JSON: {error}') from None
  if not isinstance(data, dict):
    raise MetricsError(f'{path}: expected a JSON object, got '
                       f'{type(data).__name__}')
  metrics = _field(data, 'metrics', dict, path)
  values = {}
  for key in PQ_KEYS:
    value = float(_field(metrics, key, (int, float), path, 'metrics.'))
    if not (math.isfinite(value) and 0.0 <= value <= 100.0):
      raise MetricsError(f'{path}: field metrics.{key!r} must be a '
                         f'percentage in [0, 100], got {value!r}')
    values[key] = value
  step = _field(data, 'step', int, path)
  if step < 0:
    raise MetricsError(f"{path}: field 'step' must be >= 0, got {step}")
  return EvaluatedRun(
      metrics_file=path,
      experiment_name=_field(data, 'experiment_name', str, path),
      config_file=_field(data, 'config_file', str, path),
      step=step, **values)


def find_runs(runs_dir) -> list[EvaluatedRun]:
  """Every run below `runs_dir` (itself a model_dir or a folder of them)."""
  root = pathlib.Path(runs_dir)
  if not root.is_dir():
    raise MetricsError(f'{root}: --runs is not a folder')
  files = sorted(p for p in root.rglob(METRICS_FILE)
                 if p.parent.name == EVAL_FOLDER and p.is_file())
  return [load_run(p) for p in files]


def matches(run: EvaluatedRun, config_relative_path: str,
            experiment_name: str) -> bool:
  """Whether `run` evaluated the config at `config_relative_path`.

  The run's config_file may be absolute, relative to anywhere, or a copy;
  it matches when it ends with the config's path below the configs root
  (`coco/cmt_deeplab/x.textproto`), or when the run's experiment name is
  the config's.
  """
  wanted = pathlib.PurePath(config_relative_path).parts
  given = pathlib.PurePath(run.config_file.replace('\\', '/')).parts
  if len(given) >= len(wanted) and given[-len(wanted):] == wanted:
    return True
  return bool(experiment_name) and run.experiment_name == experiment_name


def latest_match(runs: Iterable[EvaluatedRun], config_relative_path: str,
                 experiment_name: str) -> Optional[EvaluatedRun]:
  """The matching run with the most training steps (ties: last path)."""
  found = [r for r in runs
           if matches(r, config_relative_path, experiment_name)]
  if not found:
    return None
  return max(found, key=lambda r: (r.step, str(r.metrics_file)))


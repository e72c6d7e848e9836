"""Fig. 1 at matched PQ: is a row's attention denser than the baseline's at
the same segmentation quality, or only because its masks are better?

Every run keeps evaluated checkpoints (`run_one`: step 0 and evenly spaced
ones up to the last step). A checkpoint of a row and one of the baseline
(any seeds, any steps after 0) form a pair when their PQ differ by less than
`TOLERANCE`; over all pairs, the row's statistic minus the baseline's (mean
and standard deviation over pairs; pairs sharing a checkpoint are not
independent, so the spread is descriptive). Compared: the row's attention
with the baseline's attention, and, for rows with the clustering update,
the row's clustering assignment with the baseline's attention (what each
model's center update reads).
"""

import math
from typing import Mapping, Sequence

import numpy as np

TOLERANCE = 2.0
# (label, statistic of the row, statistic of the baseline).
COMPARISONS = (
    ('A inside', 'attention_inside', 'attention_inside'),
    ('A coverage', 'attention_coverage', 'attention_coverage'),
    ('Z inside', 'assignment_inside', 'attention_inside'),
    ('Z coverage', 'assignment_coverage', 'attention_coverage'),
)


def evaluated_checkpoints(results: Sequence[Mapping]) -> list[dict]:
  """[{'pq', 'statistics', 'seed', 'step'}] of the runs' checkpoints after
  step 0 that have a PQ."""
  found = []
  for result in results:
    for entry in result.get('checkpoints', []):
      if entry['step'] > 0 and entry.get('metrics'):
        found.append({'pq': entry['metrics']['pq'], 'seed': result['seed'],
                      'step': entry['step'],
                      'statistics': entry['statistics']})
  return found


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  values = values[~np.isnan(values)]
  if not values.size:
    return math.nan, math.nan
  return float(values.mean()), float(values.std(ddof=1)) if (
      values.size > 1) else 0.0


def compare(row_results: Sequence[Mapping], base_results: Sequence[Mapping],
            kinds: Sequence[str], tolerance: float = TOLERANCE) -> dict:
  """{'pairs', 'row_checkpoints', 'base_checkpoints', 'pq': (row mean,
  baseline mean) over the pairs, kind: {label: (mean, std) of the
  difference}} (module docstring)."""
  rows = evaluated_checkpoints(row_results)
  bases = evaluated_checkpoints(base_results)
  pairs = [(a, b) for a in rows for b in bases
           if abs(a['pq'] - b['pq']) < tolerance]
  summary = {'pairs': len(pairs),
             'row_checkpoints': len({id(a) for a, _ in pairs}),
             'base_checkpoints': len({id(b) for _, b in pairs}),
             'pq': (_mean_std([a['pq'] for a, _ in pairs])[0],
                    _mean_std([b['pq'] for _, b in pairs])[0])}
  for kind in kinds:
    summary[kind] = {
        label: _mean_std([
            a['statistics'][kind].get(ours, math.nan) -
            b['statistics'][kind].get(theirs, math.nan) for a, b in pairs])
        for label, ours, theirs in COMPARISONS}
  return summary

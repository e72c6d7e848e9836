"""`cmt-ablate`'s results: mean and spread per row, the table, the checks.

Spread is the standard deviation over seeds (ddof 1; 0 for one seed). A
row's delta is its mean minus the baseline's; it is called larger than the
seed-to-seed spread when |delta| > sqrt(s_row^2 + s_baseline^2), the
standard deviation of the difference of two single runs.
"""

import math
from typing import Mapping, Sequence

import numpy as np

from cmt.ablation import density as density_lib
from cmt.ablation import rows as rows_lib

METRICS = (('pq', 'PQ'), ('pq_things', 'PQ-Th'), ('pq_stuff', 'PQ-St'))
# Loss terms that only some rows train, and the rows' switch for them.
NEW_LOSSES = {'pixel_contrastive': 'instance_discrimination_loss',
              'reference_mask': 'mask_approximation_loss',
              'coord_conv': 'mask_approximation_loss'}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  if not values.size:
    return math.nan, math.nan
  std = float(values.std(ddof=1)) if values.size > 1 else 0.0
  return float(values.mean()), std


def summarize_row(results: Sequence[Mapping]) -> dict:
  """The per-seed results of one row -> means, spreads, density, losses."""
  summary = {'n': len(results), 'seeds': [r['seed'] for r in results]}
  for key, _ in METRICS:
    summary[key] = _mean_std([r['metrics'][key] for r in results])
  # Attention statistics: the mean over a seed's segments, then mean and
  # spread over seeds; `segments` is the per-seed count.
  attention = {}
  for kind in density_lib.KINDS:
    attention[kind] = {
        name: _mean_std([np.mean(r['density'][kind][name]) for r in results
                         if r['density'][kind][name]])
        for name in density_lib.STATISTICS}
    attention[kind]['segments'] = [len(r['density'][kind]['density'])
                                   for r in results]
  summary['attention'] = attention
  losses = {}
  for tag in sorted({t for r in results for t in r['losses']}):
    points = [r['losses'][tag] for r in results if tag in r['losses']]
    losses[tag] = {'start': float(np.mean([p['start'] for p in points])),
                   'end': float(np.mean([p['end'] for p in points]))}
  summary['losses'] = losses
  summary['train_seconds'] = float(np.mean([r['train_seconds']
                                            for r in results]))
  return summary


def delta(row: Mapping, base: Mapping, key: str,
          seeds: int = 2) -> tuple[float, float]:
  """(mean difference, seed-to-seed spread of the difference); the spread
  is NaN (unknown, never exceeded) with fewer than 2 seeds on a side."""
  (mean, std), (base_mean, base_std) = row[key], base[key]
  if seeds < 2:
    return mean - base_mean, math.nan
  return mean - base_mean, math.sqrt(std ** 2 + base_std ** 2)


def gradient_check(row_results: Sequence[Mapping],
                   base_results: Sequence[Mapping]) -> dict:
  """Variables a row has and the baseline has not: how many, how many got
  no (or an all-zero) gradient, and the smallest / median gradient norm
  (first seed of each)."""
  norms = row_results[0]['gradient_norms']
  new = sorted(set(norms) - set(base_results[0]['gradient_norms']))
  values = [norms[name] for name in new]
  missing = [n for n, v in zip(new, values) if not v]
  present = [v for v in values if v]
  return {'new_variables': len(new), 'without_gradient': missing,
          'min_norm': min(present) if present else math.nan,
          'median_norm': float(np.median(present)) if present else math.nan}


def summarize(results: Mapping[str, Sequence[Mapping]]) -> dict:
  """{row key: [per-seed result]} -> {row key: summary (+ deltas, checks)}."""
  summaries = {key: summarize_row(r) for key, r in results.items() if r}
  base = summaries.get(rows_lib.BASELINE.key)
  for key, summary in summaries.items():
    if base is None or key == rows_lib.BASELINE.key:
      continue
    seeds = min(summary['n'], base['n'])
    summary['delta'] = {m: delta(summary, base, m, seeds)
                        for m, _ in METRICS}
    summary['density_delta'] = {
        kind: delta(summary['attention'][kind], base['attention'][kind],
                    'density', seeds) for kind in density_lib.KINDS}
    summary['gradients'] = gradient_check(
        results[key], results[rows_lib.BASELINE.key])
  return summaries


def _pm(pair) -> str:
  mean, std = pair
  return '  n/a' if math.isnan(mean) else f'{mean:5.1f} ± {std:4.1f}'


def _signed(value: float, spread: float) -> str:
  mark = '*' if abs(value) > spread else ' '
  return f'{value:+5.1f}{mark}'


def format_table(summaries: Mapping[str, Mapping], title: str) -> str:
  """The table: mean ± std over seeds, n, our delta (* larger than the
  seed-to-seed spread) and the paper's delta, then density and checks."""
  header = (f'{"row":27s} {"PQ":>11s} {"PQ-Th":>11s} {"PQ-St":>11s} '
            f'{"n":>2s}  {"ours dPQ/Th/St":>20s}  {"paper dPQ/Th/St":>16s}')
  lines = [title, header, '-' * len(header)]
  for row in rows_lib.ROWS:
    summary = summaries.get(row.key)
    if summary is None:
      continue
    ours = '—'
    if 'delta' in summary:
      ours = ' '.join(_signed(*summary['delta'][m]) for m, _ in METRICS)
    paper = ' '.join(f'{d:+4.1f}' for d in row.paper_delta())
    lines.append(
        f'{row.label:27s} ' + ' '.join(_pm(summary[m]) for m, _ in METRICS)
        + f' {summary["n"]:2d}  {ours:>20s}  {paper:>16s}')
  lines += ['(* |delta| > sqrt(s_row^2 + s_baseline^2); paper: COCO val, '
            'Table 2a/2b, over its baseline)', '',
            'Last-layer cross-attention on the held-out segments (mean over '
            'seeds ± std over seeds; cmt/ablation/density.py):']
  for kind in density_lib.KINDS:
    lines.append(f'{kind:27s} {"density":>15s} {"mass in mask":>15s} '
                 f'{"spread":>15s} {"segments":>8s} {"d density":>10s}')
    for row in rows_lib.ROWS:
      summary = summaries.get(row.key)
      if summary is None:
        continue
      stats = summary['attention'][kind]
      cells = ' '.join(f'{stats[n][0]:6.3f} ± {stats[n][1]:6.3f}'
                       for n in density_lib.STATISTICS)
      count = '/'.join(map(str, sorted(set(stats['segments']))))
      change = '—'
      if 'density_delta' in summary:
        value, spread = summary['density_delta'][kind]
        change = f'{value:+.3f}{"*" if abs(value) > spread else " "}'
      lines.append(f'  {row.label:25s} {cells} {count:>8s} {change:>10s}')
  lines += ['', 'Checks (first seed; losses: mean over seeds, first -> last '
            '10% of the summaries):']
  for row in rows_lib.ROWS[1:]:
    summary = summaries.get(row.key)
    if summary is None or 'gradients' not in summary:
      continue
    grads = summary['gradients']
    text = (f'{row.label:27s} {grads["new_variables"]} new variables, '
            f'{len(grads["without_gradient"])} without gradient, norm min '
            f'{grads["min_norm"]:.2e} median {grads["median_norm"]:.2e}')
    tag = NEW_LOSSES.get(row.key)
    if tag and tag in summary['losses']:
      loss = summary['losses'][tag]
      text += f'; {tag} {loss["start"]:.3f} -> {loss["end"]:.3f}'
    lines.append(text)
  return '\n'.join(lines)

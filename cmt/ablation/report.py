"""`cmt-ablate`'s results: mean and spread per row, the table, the Fig. 1
statistics (`cmt.ablation.attention_stats`), the matched-PQ comparison
(`cmt.ablation.matched_pq`), the reference-mask hit rate and the checks.

Spread is the standard deviation over seeds (ddof 1; 0 for one seed). A
row's delta is its mean minus the baseline's; it is called larger than the
seed-to-seed spread when |delta| > sqrt(s_row^2 + s_baseline^2), the
standard deviation of the difference of two single runs.
"""

import math
from typing import Mapping, Sequence

import numpy as np

from cmt.ablation import attention_stats
from cmt.ablation import matched_pq
from cmt.ablation import rows as rows_lib

METRICS = (('pq', 'PQ'), ('pq_things', 'PQ-Th'), ('pq_stuff', 'PQ-St'))
# Fig. 1 statistics whose change over the baseline the table marks.
ATTENTION_DELTAS = ('attention_inside', 'attention_coverage')


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  if not values.size:
    return math.nan, math.nan
  std = float(values.std(ddof=1)) if values.size > 1 else 0.0
  return float(values.mean()), std


def summarize_row(results: Sequence[Mapping]) -> dict:
  """The per-seed results of one row -> means, spreads, Fig. 1 statistics,
  losses."""
  summary = {'n': len(results), 'seeds': [r['seed'] for r in results]}
  for key, _ in METRICS:
    summary[key] = _mean_std([r['metrics'][key] for r in results])
  # Fig. 1 statistics of the last checkpoint: a seed's mean over its
  # segments, then mean and spread over seeds.
  attention = {}
  for kind in attention_stats.KINDS:
    per_seed = [r['statistics'][kind] for r in results]
    attention[kind] = {name: _mean_std([
        s[name] for s in per_seed if not math.isnan(s.get(name, math.nan))])
                       for name in attention_stats.STATISTICS}
    attention[kind]['segments'] = [s['segments'] for s in per_seed]
    attention[kind]['reference_hit_start'] = _mean_std([
        v for v in (_first_checkpoint(r, kind, 'reference_hit')
                    for r in results) if not math.isnan(v)])
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


def _first_checkpoint(result: Mapping, kind: str, name: str) -> float:
  """A statistic at the run's step-0 checkpoint (NaN without one)."""
  for entry in result.get('checkpoints', []):
    if entry['step'] == 0:
      return entry['statistics'][kind].get(name, math.nan)
  return math.nan


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
    summary['attention_delta'] = {
        kind: {name: delta(summary['attention'][kind],
                           base['attention'][kind], name, seeds)
               for name in ATTENTION_DELTAS}
        for kind in attention_stats.KINDS}
    summary['matched_pq'] = matched_pq.compare(
        results[key], results[rows_lib.BASELINE.key], attention_stats.KINDS)
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
  seed-to-seed spread) and the paper's delta, then the Fig. 1 statistics,
  the matched-PQ comparison, the reference masks and the checks."""
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
            'Table 2a-2c, over its baseline)']
  lines += attention_lines(summaries)
  lines += matched_pq_lines(summaries)
  lines += reference_lines(summaries)
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
    for tag in row.new_losses():
      if tag in summary['losses']:
        loss = summary['losses'][tag]
        text += f'; {tag} {loss["start"]:.3f} -> {loss["end"]:.3f}'
    lines.append(text)
  return '\n'.join(lines)


def _cell(pair, width: int = 13) -> str:
  mean, std = pair
  text = '—' if math.isnan(mean) else f'{mean:.3f}±{std:.3f}'
  return f'{text:>{width}s}'


def _summaries_in_order(summaries):
  return [(row, summaries[row.key]) for row in rows_lib.ROWS
          if row.key in summaries]


def attention_lines(summaries: Mapping[str, Mapping]) -> list[str]:
  """Inside-mask share and coverage of A, Z and the mask per row (final
  step), with the change of A over the baseline."""
  lines = ['', 'Fig. 1 at the last step: held-out segments and their matched '
           'centers (mean over seeds ± std over seeds; '
           'cmt/ablation/attention_stats.py). A attention (Eq. 3 softmax), '
           'Z clustering assignment (Eq. 6), Y final mask (Eq. 4).']
  for kind in attention_stats.KINDS:
    spots = [s['attention'][kind]['spot'][0] for s in summaries.values()]
    spot = spots[0] if spots else math.nan
    lines.append(f'{kind} (coverage of one stride-16 cell: {spot:.3f})')
    lines.append(f'  {"row":25s} {"A inside":>13s} {"A coverage":>13s} '
                 f'{"Z inside":>13s} {"Z coverage":>13s} {"Y inside":>13s} '
                 f'{"Y coverage":>13s} {"seg.":>5s} {"dA in/cov":>15s}')
    for row, summary in _summaries_in_order(summaries):
      stats = summary['attention'][kind]
      cells = ''.join(' ' + _cell(stats[f'{m}_{s}'])
                      for m in attention_stats.MAPS
                      for s in ('inside', 'coverage'))
      count = '/'.join(map(str, sorted(set(stats['segments']))))
      change = '—'
      if 'attention_delta' in summary:
        change = ' '.join(
            f'{v:+.3f}{"*" if abs(v) > spread else " "}' for v, spread in (
                summary['attention_delta'][kind][n] for n in ATTENTION_DELTAS))
      lines.append(f'  {row.label:25s}{cells} {count:>5s} {change:>15s}')
  return lines


def matched_pq_lines(summaries: Mapping[str, Mapping]) -> list[str]:
  """Row minus baseline at matched PQ (`cmt.ablation.matched_pq`)."""
  lines = ['', f'Fig. 1 at matched PQ: checkpoints (after step 0) of a row and '
           f'of the baseline with |PQ difference| < {matched_pq.TOLERANCE:g}; '
           'row minus baseline, mean ± std over pairs (Z: the row\'s '
           'assignment against the baseline\'s attention)']
  labels = [label for label, _, _ in matched_pq.COMPARISONS]
  lines.append(f'  {"row":25s} {"pairs":>5s} {"PQ row/base":>11s} ' +
               ' '.join(f'{kind[:2]} {label:>10s}' for kind in
                        attention_stats.KINDS for label in labels))
  for row, summary in _summaries_in_order(summaries):
    matched = summary.get('matched_pq')
    if matched is None:
      continue
    pq = '—' if not matched['pairs'] else '{:.1f}/{:.1f}'.format(
        *matched['pq'])
    cells = ' '.join(_cell(matched[kind][label]) for kind in
                     attention_stats.KINDS for label in labels)
    lines.append(f'  {row.label:25s} {matched["pairs"]:5d} {pq:>11s} '
                 f'{cells}')
  return lines


def reference_lines(summaries: Mapping[str, Mapping]) -> list[str]:
  """Share of the M reference points inside the matched segment, at step 0
  and at the last step, against chance (the segment's share of the
  image)."""
  shown = [(row, s) for row, s in _summaries_in_order(summaries)
           if not math.isnan(s['attention']['things']['reference_hit'][0])]
  if not shown:
    return []
  lines = ['', 'Reference masks (Eq. 10): share of the M points of a matched '
           'center inside its segment (mean over seeds ± std), at step 0 '
           'and at the last step, against chance = segment area / image '
           'area']
  lines.append(f'  {"row":25s} ' + ' '.join(
      f'{kind[:2]} {name:>10s}' for kind in attention_stats.KINDS
      for name in ('hit step 0', 'hit last', 'chance')))
  for row, summary in shown:
    cells = ' '.join(
        _cell(summary['attention'][kind][name]) for kind in
        attention_stats.KINDS for name in (
            'reference_hit_start', 'reference_hit', 'reference_chance'))
    lines.append(f'  {row.label:25s} {cells}')
  return lines

"""`cmt-ablate`'s table and checks from hand-made per-seed results."""

import math

import pytest

from cmt.ablation import report
from cmt.ablation import rows


def _result(seed, pq, norms, density=(0.2, 0.4), losses=None):
  return {'seed': seed,
          'metrics': {'pq': pq, 'pq_things': pq - 10, 'pq_stuff': pq + 10},
          'density': {kind: {'density': list(density), 'mass': [0.5, 0.5],
                             'spread': [0.1, 0.1]}
                      for kind in ('things', 'stuff')},
          'losses': losses or {'total_loss': {'start': 9.0, 'end': 4.0}},
          'gradient_norms': norms, 'train_seconds': 1.0}


def test_summary_deltas_spread_and_gradient_check():
  base = {'a': 1.0}
  results = {
      'baseline': [_result(0, 20.0, base), _result(1, 22.0, base)],
      'pixel_contrastive': [
          _result(0, 30.0, {'a': 1.0, 'new1': 0.5, 'new2': None},
                  density=(0.6, 0.8),
                  losses={'instance_discrimination_loss':
                          {'start': 5.0, 'end': 3.0}}),
          _result(1, 31.0, {'a': 1.0, 'new1': 0.5, 'new2': None})],
  }
  summaries = report.summarize(results)
  assert summaries['baseline']['pq'] == (21.0, pytest.approx(math.sqrt(2)))
  mean, spread = summaries['pixel_contrastive']['delta']['pq']
  assert mean == pytest.approx(9.5)
  assert spread == pytest.approx(math.sqrt(2 + 0.5))
  grads = summaries['pixel_contrastive']['gradients']
  assert grads['new_variables'] == 2 and grads['without_gradient'] == ['new2']
  attention = summaries['pixel_contrastive']['attention']['things']
  assert attention['density'][0] == pytest.approx(0.5)
  assert summaries['pixel_contrastive']['density_delta']['stuff'][0] == (
      pytest.approx(0.2))
  table = report.format_table(summaries, 'title')
  assert 'baseline (MaX-S)' in table and '+ pixel-wise contrastive' in table
  assert '+9.5*' in table  # larger than the seed-to-seed spread
  assert '+1.3' in table  # the paper's delta of that row
  assert 'instance_discrimination_loss 5.000 -> 3.000' in table
  assert '+ coord-conv' not in table  # not run


def test_rows_turn_on_the_paper_switches():
  assert [r.key for r in rows.ROWS] == list(rows.ROW_KEYS)
  assert rows.BASELINE.paper_delta() == (0.0, 0.0, 0.0)
  coord = rows.row_of('coord_conv')
  assert 'model_options.clustering.coord_conv=true' in coord.overrides()
  assert 'model_options.clustering.reference_mask=true' in coord.overrides()
  assert coord.paper_delta() == (0.7, 0.6, 0.8)
  with pytest.raises(ValueError, match='nope'):
    rows.row_of('nope')

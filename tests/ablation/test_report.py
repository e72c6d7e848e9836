"""`cmt-ablate`'s table and checks from hand-made per-seed results."""

import math

import pytest

from cmt import config as config_lib
from cmt import config_checks
from cmt.ablation import attention_stats
from cmt.ablation import experiment
from cmt.ablation import report
from cmt.ablation import rows
from cmt.evaluation import paper_table_rows
from cmt.model import builder


def _statistics(inside=0.4, coverage=0.5, hit=None):
  kind = {name: math.nan for name in attention_stats.STATISTICS}
  kind.update(attention_inside=inside, attention_coverage=coverage,
              mask_inside=0.9, mask_coverage=0.9, spot=0.6, segments=2,
              unmatched=0)
  if hit is not None:
    kind.update(reference_hit=hit, reference_chance=0.05)
  return {'things': kind, 'stuff': dict(kind)}


def _result(seed, pq, norms, statistics=None, losses=None, checkpoints=()):
  statistics = statistics or _statistics()
  return {'seed': seed,
          'metrics': {'pq': pq, 'pq_things': pq - 10, 'pq_stuff': pq + 10},
          'statistics': statistics,
          'checkpoints': list(checkpoints) + [
              {'step': 100, 'metrics': {'pq': pq}, 'statistics': statistics}],
          'losses': losses or {'total_loss': {'start': 9.0, 'end': 4.0}},
          'gradient_norms': norms, 'train_seconds': 1.0}


def test_summary_deltas_spread_and_gradient_check():
  base = {'a': 1.0}
  results = {
      'baseline': [_result(0, 20.0, base), _result(1, 22.0, base)],
      'pixel_contrastive': [
          _result(0, 30.0, {'a': 1.0, 'new1': 0.5, 'new2': None},
                  statistics=_statistics(inside=0.6, coverage=0.7),
                  losses={'instance_discrimination_loss':
                          {'start': 5.0, 'end': 3.0}}),
          _result(1, 31.0, {'a': 1.0, 'new1': 0.5, 'new2': None},
                  statistics=_statistics(inside=0.6, coverage=0.9))],
  }
  summaries = report.summarize(results)
  assert summaries['baseline']['pq'] == (21.0, pytest.approx(math.sqrt(2)))
  mean, spread = summaries['pixel_contrastive']['delta']['pq']
  assert mean == pytest.approx(9.5)
  assert spread == pytest.approx(math.sqrt(2 + 0.5))
  grads = summaries['pixel_contrastive']['gradients']
  assert grads['new_variables'] == 2 and grads['without_gradient'] == ['new2']
  attention = summaries['pixel_contrastive']['attention']['things']
  assert attention['attention_coverage'] == (pytest.approx(0.8),
                                             pytest.approx(math.sqrt(0.02)))
  inside, spread = summaries['pixel_contrastive']['attention_delta'][
      'stuff']['attention_inside']
  assert (inside, spread) == (pytest.approx(0.2), 0.0)
  table = report.format_table(summaries, 'title')
  assert 'baseline (MaX-S)' in table and '+ pixel-wise contrastive' in table
  assert '+9.5*' in table  # larger than the seed-to-seed spread
  assert '+1.3' in table  # the paper's delta of that row
  assert 'instance_discrimination_loss 5.000 -> 3.000' in table
  assert '+ coord-conv' not in table  # not run
  assert '0.800±0.141' in table and '+0.200*' in table
  assert 'Reference masks' not in table  # no row predicts them


def test_rows_turn_on_the_paper_switches():
  assert [r.key for r in rows.ROWS] == list(rows.ROW_KEYS)
  assert rows.BASELINE.paper_delta() == (0.0, 0.0, 0.0)
  coord = rows.row_of('coord_conv')
  assert 'model_options.clustering.coord_conv=true' in coord.overrides()
  assert 'model_options.clustering.reference_mask=true' in coord.overrides()
  assert coord.paper_delta() == (0.7, 0.6, 0.8)
  with pytest.raises(ValueError, match='nope'):
    rows.row_of('nope')
  assert rows.row_of('cmt').new_losses() == (
      'instance_discrimination_loss', 'mask_approximation_loss')
  assert rows.BASELINE.new_losses() == ()


@pytest.mark.parametrize('row', rows.ROWS, ids=lambda r: r.key)
def test_each_row_builds_the_tiny_model_its_recipe_names(row):
  """The row's overrides pass the checks of `cmt-config validate` and
  give the spec its paper row's recipe (read back from the spec)."""
  options, _ = config_lib.load_config_leaving_unset(
      experiment.DEFAULT_CONFIG,
      overrides=row.overrides() + experiment.crop_overrides(129),
      purposes=config_checks.ALL_PURPOSES)
  spec = builder.model_spec(options)
  stages = tuple((s.backbone_stage, len(s.pairs))
                 for s in spec.transformer_stages)
  recipe = row.recipe
  assert spec.clustering_update == recipe.clustering_update
  assert spec.reference_mask == recipe.reference_mask
  assert spec.dual_path.coord_conv == recipe.coord_conv
  assert (stages == paper_table_rows.STRONGER_DECODER_STAGES) == (
      recipe.stronger_decoder)
  discrimination = (options.trainer_options.loss_options
                    .instance_discrimination_loss)
  assert (discrimination.type == discrimination.PIXEL_CONTRASTIVE) == (
      recipe.pixel_contrastive_loss)


def test_matched_pq_pairs_checkpoints_within_two_pq():
  base = {'a': 1.0}
  # Baseline checkpoints at PQ 10 and 30; the row's at 11 and 50: one pair
  # (11 vs 10), coverage 0.7 against 0.5.
  results = {
      'baseline': [_result(0, 30.0, base, checkpoints=[
          {'step': 0, 'metrics': None, 'statistics': _statistics()},
          {'step': 50, 'metrics': {'pq': 10.0},
           'statistics': _statistics(coverage=0.5)}])],
      'clustering_update': [_result(0, 50.0, base, checkpoints=[
          {'step': 50, 'metrics': {'pq': 11.0},
           'statistics': _statistics(coverage=0.7)}])],
  }
  matched = report.summarize(results)['clustering_update']['matched_pq']
  assert matched['pairs'] == 1 and matched['pq'] == (11.0, 10.0)
  assert matched['things']['A coverage'] == (pytest.approx(0.2), 0.0)
  assert math.isnan(matched['things']['Z coverage'][0])  # no Z here


def test_reference_hits_at_step_zero_and_at_the_end():
  base = {'a': 1.0}
  start = {'step': 0, 'metrics': None, 'statistics': _statistics(hit=0.1)}
  results = {
      'baseline': [_result(0, 20.0, base)],
      'reference_mask': [
          _result(0, 20.0, {'a': 1.0, 'mlp': 0.1},
                  statistics=_statistics(hit=0.5), checkpoints=[start])],
  }
  summaries = report.summarize(results)
  things = summaries['reference_mask']['attention']['things']
  assert things['reference_hit_start'] == (pytest.approx(0.1), 0.0)
  assert things['reference_hit'] == (pytest.approx(0.5), 0.0)
  table = report.format_table(summaries, 'title')
  assert 'Reference masks' in table
  line = [l for l in table.splitlines() if l.startswith('  + reference mask')
          and '0.100' in l][0]
  assert '0.500' in line and '0.050' in line

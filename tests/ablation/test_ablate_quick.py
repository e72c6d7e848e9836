"""`cmt-ablate --quick` end to end: data, training, evaluation, density,
table. Checks only that the pipeline runs and reports its rows (never which
row wins: --quick trains for 4 steps). 137 s on the 2 shared cores at load
average 3.5: each run traces its own train, eval and figure graphs."""

import json

import pytest

from cmt.tools import ablate


@pytest.mark.slow
def test_quick_run_writes_the_table_and_resumes(tmp_path, capsys):
  out = tmp_path / 'ablation'
  # Two rows keep the test short (each run traces its own graphs): the
  # baseline and the row with the clustering update and Eq. 14.
  argv = [f'--output_dir={out}', '--quick',
          '--rows=baseline,pixel_contrastive', '--jobs=2']
  assert ablate.main(argv) == 0
  printed = capsys.readouterr().out
  table = (out / 'table.txt').read_text()
  assert table.strip() in printed
  for label in ('baseline (MaX-S)', '+ pixel-wise contrastive'):
    assert label in table
  results = json.loads((out / 'results.json').read_text())
  for key in ('baseline', 'pixel_contrastive'):
    (run,) = results['runs'][key]
    assert run['steps'] == 4 and run['metrics']['num_images'] == 2
    assert run['density']['things']['density']  # every held-out thing
    assert run['density']['stuff']['density']
  checks = results['summaries']['pixel_contrastive']['gradients']
  assert checks['new_variables'] > 0
  # A rerun with the same settings finds everything done.
  assert ablate.main(argv) == 0
  assert '0 of 2 runs to do' in capsys.readouterr().out

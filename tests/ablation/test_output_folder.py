"""`cmt-ablate`'s output folder: one budget per folder, which later runs
may extend by rows or seeds, and a table over every finished run in it."""

import dataclasses
import json

import pytest

from cmt.ablation import experiment
from cmt.ablation import rows


def _settings(**changes):
  settings = experiment.Settings(
      config_file=experiment.DEFAULT_CONFIG, rows=('baseline',), seeds=(0,),
      steps=10, image_size=33, num_train=4, num_val=2)
  return dataclasses.replace(settings, **changes)


def test_a_folder_takes_new_rows_and_seeds_of_its_budget_only(tmp_path):
  out = tmp_path / 'ablation'
  experiment.prepare_output(str(out), _settings(), overwrite=False)
  (out / 'runs').mkdir()
  saved = json.loads((out / 'settings.json').read_text())
  assert 'rows' not in saved and saved['steps'] == 10
  experiment.prepare_output(
      str(out), _settings(rows=('baseline', 'decoder'), seeds=(0, 1, 2)),
      overwrite=False)
  assert (out / 'runs').is_dir()  # resumed, not replaced
  with pytest.raises(FileExistsError,
                     match=r'\(steps: 10 there, 11 here\); pass --overwrite'):
    experiment.prepare_output(str(out), _settings(steps=11), overwrite=False)
  experiment.prepare_output(str(out), _settings(steps=11), overwrite=True)
  assert not (out / 'runs').exists()


def test_the_table_covers_every_finished_run_in_row_order(tmp_path):
  for key, names in (('decoder', ('seed1.json',)),
                     ('baseline', ('seed2.json', 'seed0.json', 'seed1.log',
                                   'seed1.json.tmp', 'seed1')),
                     ('not_a_row', ('seed0.json',))):
    folder = tmp_path / 'runs' / key
    folder.mkdir(parents=True)
    for name in names:
      (folder / name).write_text('{}')
  found = [(job.row.key, job.seed)
           for job in experiment.finished_jobs(str(tmp_path))]
  assert found == [('baseline', 0), ('baseline', 2), ('decoder', 1)]
  assert rows.ROW_KEYS.index('baseline') < rows.ROW_KEYS.index('decoder')

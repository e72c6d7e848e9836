"""`cmt-paper-tables`: the registry against the paper, JSON, runs, errors."""

import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cmt.evaluation import evaluated_runs
from cmt.evaluation import evaluator as evaluator_lib
from cmt.evaluation import paper_table_rows
from cmt.evaluation import paper_tables
from cmt.protos import model_pb2
from cmt.tools import paper_tables as paper_tables_tool

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
PAPER = REPO.parent / 'shared' / 'paper' / 'cmt_deeplab_cvpr2022.txt'
ROWS = paper_table_rows.ROWS
NUMBER = re.compile(r'\d+\.\d+M?')


@pytest.fixture(scope='module')
def paper_table_lines() -> list[list[str]]:
  """The numbers of each line of the paper's Tables 1-3, as text tokens."""
  if not PAPER.is_file():
    if os.environ.get('CI'):
      pytest.fail(f'{PAPER} is missing; CI must have ../shared beside the '
                  'clone')
    pytest.skip(f'{PAPER} not found (../shared beside the clone)')
  text = PAPER.read_text(encoding='utf-8')
  start = text.index('val-set')
  end = text.index('Table 3. Ablation')
  return [line for line in text[start:end].splitlines() if line.strip()]


def _architecture(recipe):
  """The Recipe fields that change the model (not crop, steps, loss...)."""
  return (recipe.backbone, recipe.clustering_update, recipe.reference_mask,
          recipe.coord_conv, recipe.stronger_decoder,
          recipe.recursive_feature_network)


def run_main(*argv, counter=None):
  out, err = io.StringIO(), io.StringIO()
  code = paper_tables_tool.main(list(argv), param_counter=counter, stdout=out,
                                stderr=err)
  return code, out.getvalue(), err.getvalue()


def test_registry_covers_every_row_of_the_tables():
  per_table = {t: [r.row for r in paper_table_rows.rows_of(t)]
               for t in paper_table_rows.TABLES}
  # Table 1: the four CMT-DeepLab rows; 2a, 2b: three rows; 2c: six;
  # 2d: four; 3: eight.
  assert {t: len(r) for t, r in per_table.items()} == {
      '1': 4, '2a': 3, '2b': 3, '2c': 6, '2d': 4, '3': 8}
  for labels in per_table.values():
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize('row', ROWS, ids=lambda r: f'{r.table}:{r.row}')
def test_row_numbers_are_the_papers(row, paper_table_lines):
  triple = [f'{row.paper.pq:.1f}', f'{row.paper.pq_things:.1f}',
            f'{row.paper.pq_stuff:.1f}']
  found = []  # (line, the numeric token before the triple)
  for line in paper_table_lines:
    tokens = NUMBER.findall(line)
    for i in range(len(tokens) - 2):
      if tokens[i:i + 3] == triple:
        found.append((line, tokens[i - 1] if i else None))
  assert found, f'{triple} is not in the paper\'s tables'
  if row.paper_params_m is not None and not row.paper_params_source:
    assert f'{row.paper_params_m}M' in [before for _, before in found]
  if row.table == '3':
    res, backbone, iters = row.row.split(', ')
    assert any(line.split()[:3] == [res, backbone, iters]
               for line, _ in found)
  if row.table == '1':
    backbone = row.row.split(', ')[1].replace('‡', '')
    assert any(line.startswith('CMT-DeepLab') and
               backbone.split('-')[1] in line for line, _ in found)


@pytest.mark.parametrize('row', [r for r in ROWS if r.paper_params_source],
                         ids=lambda r: f'{r.table}:{r.row}')
def test_borrowed_counts_come_from_a_row_of_the_same_architecture(row):
  match = re.fullmatch(r'Table (\w+), row "(.+)" \(same architecture\)',
                       row.paper_params_source)
  assert match, row.paper_params_source
  source = next(r for r in ROWS
                if (r.table, r.row) == (match.group(1), match.group(2)))
  assert not source.paper_params_source
  assert source.paper_params_m == row.paper_params_m
  assert _architecture(source.recipe) == _architecture(row.recipe)


def test_rows_sharing_a_config_are_one_experiment():
  by_config = {}
  for row in ROWS:
    by_config.setdefault(row.config, []).append(row)
  for rows in by_config.values():
    assert len({(r.recipe, r.paper, r.paper_params_m) for r in rows}) == 1


def _fake_count(recipe) -> int:
  """A made-up count that differs between architectures."""
  flags = _architecture(recipe)
  return 1_000_000 * (60 + sum(2 ** i for i, on in enumerate(
      [flags[0] == 'AXIAL_RESNET_104', *flags[1:]]) if on)) + 7


def fake_counter(calls):
  """A stand-in for the model builder: counts from the model options only."""
  def count(options, dataset_info):
    calls.append(options.experiment_name)
    assert dataset_info.num_classes == 133
    model = options.model_options
    flags = (model.backbone.name == model_pb2.BackboneOptions.AXIAL_RESNET_104,
             model.clustering.clustering_update,
             model.clustering.reference_mask, model.clustering.coord_conv,
             len(model.decoder.transformer_stages) > 0,
             model.recursive_feature_network)
    return 1_000_000 * (60 + sum(2 ** i for i, on in enumerate(flags)
                                 if on)) + 7
  return count


def test_json_has_one_entry_per_row_with_counts_and_differences():
  calls = []
  code, out, err = run_main('--json', '--params', counter=fake_counter(calls))
  assert code == 0, err
  entries = json.loads(out)
  assert [(e['table'], e['row']) for e in entries] == [
      (r.table, r.row) for r in ROWS]
  # Each distinct model is built once, with progress on stderr; configs
  # that only train, evaluate or start differently share its count.
  assert len(calls) == len({_architecture(r.recipe) for r in ROWS}) == 10
  assert err.count('parameters (') == len(calls)
  assert err.count('same model as') == len({r.config for r in ROWS}) - 10
  for entry, row in zip(entries, ROWS):
    assert set(entry) == {
        'table', 'row', 'config', 'params', 'paper_params',
        'params_diff_percent', 'paper_params_source', 'pq', 'pq_things',
        'pq_stuff', 'paper_pq', 'paper_pq_things', 'paper_pq_stuff', 'run',
        'step'}
    expected = _fake_count(row.recipe)
    assert entry['config'] == row.config
    assert entry['params'] == expected
    assert entry['paper_params'] == (
        None if row.paper_params_m is None
        else round(row.paper_params_m * 1e6))
    if entry['paper_params'] is None:
      assert entry['params_diff_percent'] is None
    else:
      assert entry['params_diff_percent'] == pytest.approx(
          100 * (expected / entry['paper_params'] - 1), abs=1e-3)
    assert entry['pq'] is None and entry['run'] is None
    assert (entry['paper_pq'], entry['paper_pq_things'],
            entry['paper_pq_stuff']) == (row.paper.pq, row.paper.pq_things,
                                         row.paper.pq_stuff)


def test_without_params_nothing_is_built():
  calls = []
  code, out, err = run_main('--json', counter=fake_counter(calls))
  assert code == 0, err
  assert calls == [] and err == ''
  assert all(e['params'] is None for e in json.loads(out))
  code, out, _ = run_main(counter=fake_counter(calls))
  assert calls == []
  assert 'paper params' in out and 'diff' not in out


def write_run(folder, experiment_name, config_file, step, pq=(51.23, 55.0,
                                                                45.64)):
  path = folder / 'eval' / 'metrics.json'
  path.parent.mkdir(parents=True)
  metrics = {'pq': pq[0], 'sq': 80.0, 'rq': 60.0, 'pq_things': pq[1],
             'sq_things': 81.0, 'rq_things': 61.0, 'pq_stuff': pq[2],
             'sq_stuff': 79.0, 'rq_stuff': 59.0, 'n': 133, 'n_things': 80,
             'n_stuff': 53, 'ap': None, 'miou': 62.5}
  path.write_text(json.dumps({'experiment_name': experiment_name,
                              'config_file': config_file, 'step': step,
                              'metrics': metrics}))
  return path


@pytest.fixture
def runs(tmp_path):
  """Four runs: by path, by experiment name (twice), and a demo run."""
  root = tmp_path / 'runs'
  by_path = 'coco/cmt_deeplab/table3_r50_res641_100k.textproto'
  write_run(root / 'a', 'renamed', str(CONFIGS / by_path), 100000)
  write_run(root / 'b' / 'early', 'table2c_stronger_decoder_r50_res641_100k',
            '/elsewhere/copy.textproto', 50000, pq=(30.0, 31.0, 29.0))
  write_run(root / 'b' / 'late', 'table2c_stronger_decoder_r50_res641_100k',
            '/elsewhere/copy.textproto', 100000, pq=(47.04, 51.36, 40.86))
  write_run(root / 'demo', 'demo_cmt_tiny', 'configs/demo/tiny.textproto',
            3000, pq=(55.55, 60.0, 50.0))
  return root


def test_runs_fill_matching_rows_in_text(runs):
  code, out, err = run_main('--runs', str(runs), '--tables', '2c,3')
  assert code == 0, err
  lines = out.splitlines()
  table3 = next(l for l in lines if l.lstrip().startswith('641, Axial-R50, 100k'))
  assert re.search(r'51\.2\s+55\.0\s+45\.6\s+50\.1\s+53\.5\s+44\.9', table3)
  decoder = next(l for l in lines if l.lstrip().startswith('decoder '))
  # The later of two runs of one config wins.
  assert re.search(r'47\.0\s+51\.4\s+40\.9\s+47\.1\s+51\.3\s+40\.9', decoder)
  baseline = next(l for l in lines if l.lstrip().startswith('baseline'))
  assert paper_tables.NOT_RUN in baseline
  assert out.count(paper_tables.NOT_RUN) == 6 + 8 - 2
  assert str(runs / 'b' / 'late' / 'eval' / 'metrics.json') in out
  assert 'match no paper row' in out
  assert 'demo_cmt_tiny' in out and '55.5' in out
  assert 'Table 1.' not in out


def test_runs_fill_matching_rows_in_json(runs):
  code, out, err = run_main('--json', '--runs', str(runs))
  assert code == 0
  entries = {(e['table'], e['row']): e for e in json.loads(out)}
  filled = {k for k, e in entries.items() if e['pq'] is not None}
  assert filled == {('3', '641, Axial-R50, 100k'), ('2c', 'decoder')}
  decoder = entries[('2c', 'decoder')]
  assert (decoder['pq'], decoder['pq_things'], decoder['pq_stuff'],
          decoder['step']) == (47.04, 51.36, 40.86, 100000)
  assert decoder['run'] == str(runs / 'b' / 'late')
  assert 'demo' in err and 'matches no paper row' in err


@pytest.mark.parametrize('content, fragment', [
    ('{"experiment_name": "x", ', 'not valid JSON'),
    ('[1, 2]', 'expected a JSON object'),
    ('{"experiment_name": "x", "config_file": "c", "step": 1, '
     '"metrics": {"pq": 1.0, "pq_stuff": 2.0}}', "'pq_things'"),
    ('{"experiment_name": "x", "config_file": "c", "step": 1, '
     '"metrics": {"pq": "50", "pq_things": 1, "pq_stuff": 2}}', "'pq'"),
    ('{"experiment_name": "x", "config_file": "c", "step": 1, '
     '"metrics": {"pq": 150.0, "pq_things": 1, "pq_stuff": 2}}', '[0, 100]'),
    ('{"experiment_name": "x", "config_file": "c", "step": true, '
     '"metrics": {"pq": 1, "pq_things": 1, "pq_stuff": 2}}', "'step'"),
    ('{"config_file": "c", "step": 1, '
     '"metrics": {"pq": 1, "pq_things": 1, "pq_stuff": 2}}',
     "'experiment_name'"),
])
def test_malformed_metrics_is_an_error_naming_the_file(tmp_path, content,
                                                       fragment):
  path = tmp_path / 'runs' / 'bad_run' / 'eval' / 'metrics.json'
  path.parent.mkdir(parents=True)
  path.write_text(content)
  with pytest.raises(evaluated_runs.MetricsError) as error:
    evaluated_runs.load_run(path)
  assert str(path) in str(error.value) and fragment in str(error.value)
  code, out, err = run_main('--runs', str(tmp_path / 'runs'))
  assert code == 1 and out == ''
  assert str(path) in err and fragment in err


def test_missing_runs_folder_and_config_are_named(tmp_path):
  code, _, err = run_main('--runs', str(tmp_path / 'nowhere'))
  assert code == 1 and str(tmp_path / 'nowhere') in err
  root = tmp_path / 'configs'
  shutil.copytree(CONFIGS, root)
  missing = root / ROWS[0].config
  missing.unlink()
  code, _, err = run_main('--configs_root', str(root))
  assert code == 1 and str(missing) in err


def test_console_script_prints_json():
  script = shutil.which('cmt-paper-tables', path=str(
      pathlib.Path(sys.executable).parent))
  assert script, 'cmt-paper-tables is not installed'
  result = subprocess.run([script, '--json', '--tables', '2b'],
                          capture_output=True, text=True, timeout=120,
                          check=False)
  assert result.returncode == 0, result.stderr
  assert [e['row'] for e in json.loads(result.stdout)] == [
      r.row for r in paper_table_rows.rows_of('2b')]


# One row per architecture the paper counts in its own table (Tables 1, 2c):
# the nine figures 61.9M ... 270.3M, seven distinct models plus the RFN.
def _first_row_per_architecture(rows):
  found = {}
  for row in rows:
    if row.paper_params_m and not row.paper_params_source:
      found.setdefault(_architecture(row.recipe), row)
  return list(found.values())


COUNTED_ROWS = _first_row_per_architecture(ROWS)


@pytest.mark.slow
@pytest.mark.parametrize('row', COUNTED_ROWS,
                         ids=lambda r: f'{r.table}:{r.row}')
def test_real_count_is_within_2_percent_of_the_paper(row):
  from cmt.data import dataset_info  # pylint: disable=g-import-not-at-top
  options = paper_tables.load_experiment(CONFIGS, row.config)
  count = paper_tables.model_param_counter(
      options, dataset_info.get_dataset_info(options.train_dataset_options))
  difference = 100 * (count / row.paper_params - 1)
  assert abs(difference) <= 2.0, (
      f'{row.config}: {count:,} parameters, paper {row.paper_params_m}M '
      f'({difference:+.2f}%)')


def test_reads_what_the_evaluator_writes(tmp_path):
  """Round trip through PanopticEvaluator.write_metrics_json."""
  from cmt.data import dataset_info  # pylint: disable=g-import-not-at-top
  from cmt.protos import evaluator_pb2  # pylint: disable=g-import-not-at-top
  options = evaluator_pb2.EvaluatorOptions(compute_mask_ap=False,
                                           thing_area_limit=0,
                                           stuff_area_limit=0)
  evaluator = evaluator_lib.PanopticEvaluator(dataset_info.COCO_PANOPTIC,
                                              options)
  divisor = dataset_info.LABEL_DIVISOR
  gt = np.zeros((8, 8), np.int32)
  gt[:, :4] = 1 * divisor + 1  # a person (thing, class 1)
  gt[:, 4:] = 100 * divisor  # a stuff class
  pred = gt.copy()
  pred[:, 4:] = 101 * divisor  # stuff predicted as another class
  evaluator.update(gt, None, pred, 'image')
  row = paper_table_rows.rows_of('2c')[3]
  metrics_file = tmp_path / 'runs' / 'decoder' / 'eval' / 'metrics.json'
  evaluator.write_metrics_json(
      str(metrics_file), experiment_name='anything',
      config_file=str(CONFIGS / row.config), step=100000)
  run = evaluated_runs.load_run(metrics_file)
  # Things: one perfect match (PQ 100); stuff: two classes with nothing
  # matched (PQ 0 each).
  assert (run.pq_things, run.pq_stuff) == (100.0, 0.0)
  assert run.pq == pytest.approx(100 / 3)
  code, out, _ = run_main('--json', '--runs', str(tmp_path / 'runs'),
                          '--tables', '2c')
  assert code == 0
  filled = [e for e in json.loads(out) if e['pq'] is not None]
  assert [(e['row'], e['step']) for e in filled] == [(row.row, 100000)]

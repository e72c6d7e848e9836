"""The paper's Tables 1, 2a-2d and 3 beside this library (the work of
`cmt-paper-tables`, whose command line is `cmt.tools.paper_tables`).

For every row of `cmt.evaluation.paper_table_rows.ROWS`: the config that
reproduces it, the inference parameter count of the model it builds beside
the paper's, and the PQ of an evaluated run of it beside the paper's.
"""

import dataclasses
import gc
import pathlib
import sys
import time
from typing import Callable, Optional, Sequence, TextIO

from cmt import config
from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import evaluated_runs
from cmt.evaluation import paper_table_rows
from cmt.protos import config_pb2

# (options, dataset_info) -> number of inference parameters.
ParamCounter = Callable[[config_pb2.ExperimentOptions,
                         dataset_info_lib.DatasetInfo], int]

NOT_RUN = 'not run'


def default_configs_root() -> pathlib.Path:
  """`configs/` of the checkout, or `cmt/configs` of an installed wheel."""
  return pathlib.Path(__file__).resolve().parent.parent / 'configs'


def load_experiment(configs_root: pathlib.Path,
                    relative_path: str) -> config_pb2.ExperimentOptions:
  """Loads a row's config with its `${NAME}` placeholders left unfilled.

  Paths do not change the model, so each placeholder keeps its own text
  (`config.load_config_leaving_unset`); an unreadable or invalid config
  raises ConfigError naming the file.
  """
  path = configs_root / relative_path
  if not path.is_file():
    raise config.ConfigError(
        f'{path}: no such config of a paper table row (is --configs_root '
        'right?)')
  # The environment is not read: the tables describe the shipped configs.
  options, _ = config.load_config_leaving_unset(str(path), environ={})
  return options


def model_param_counter(options: config_pb2.ExperimentOptions,
                        dataset_info: dataset_info_lib.DatasetInfo) -> int:
  """Builds the model a config describes and counts its parameters."""
  # Imported here: without --params the tool never loads TensorFlow.
  import tf_keras  # pylint: disable=g-import-not-at-top
  from cmt.model import builder  # pylint: disable=g-import-not-at-top
  try:
    return int(builder.count_inference_params(options, dataset_info))
  finally:
    # Up to 270M parameters per model: free each before the next.
    tf_keras.backend.clear_session()
    gc.collect()


@dataclasses.dataclass(frozen=True)
class TableEntry:
  """One printed row: the paper's figures and ours."""
  row: paper_table_rows.PaperRow
  params: Optional[int] = None
  run: Optional[evaluated_runs.EvaluatedRun] = None

  @property
  def params_diff_percent(self) -> Optional[float]:
    paper = self.row.paper_params
    if self.params is None or paper is None:
      return None
    return 100.0 * (self.params - paper) / paper

  def to_json(self) -> dict:
    row, run = self.row, self.run
    diff = self.params_diff_percent
    return {
        'table': row.table,
        'row': row.row,
        'config': row.config,
        'params': self.params,
        'paper_params': row.paper_params,
        'params_diff_percent': None if diff is None else round(diff, 3),
        'paper_params_source': row.paper_params_source or None,
        'pq': run.pq if run else None,
        'pq_things': run.pq_things if run else None,
        'pq_stuff': run.pq_stuff if run else None,
        'paper_pq': row.paper.pq,
        'paper_pq_things': row.paper.pq_things,
        'paper_pq_stuff': row.paper.pq_stuff,
        'run': str(run.model_dir) if run else None,
        'step': run.step if run else None,
    }


def model_key(experiment: config_pb2.ExperimentOptions) -> bytes:
  """What a parameter count depends on: the model options (less the
  checkpoint to start from and the gradient recomputation) and the dataset
  (its class count)."""
  model = config_pb2.ExperimentOptions()
  model.model_options.CopyFrom(experiment.model_options)
  model.model_options.ClearField('initial_checkpoint')
  model.model_options.ClearField('restore_scope')
  model.model_options.ClearField('recompute')
  model.train_dataset_options.dataset = (
      experiment.train_dataset_options.dataset)
  model.train_dataset_options.categories_json = (
      experiment.train_dataset_options.categories_json)
  return model.SerializeToString(deterministic=True)


def count_params(configs: Sequence[str],
                 options: dict[str, config_pb2.ExperimentOptions],
                 counter: ParamCounter,
                 progress: TextIO) -> dict[str, int]:
  """Counts each distinct model once, reporting progress on `progress`.

  Configs that differ only in training, data or evaluation settings build
  the same model; they share one count (in memory only).
  """
  counts, by_model = {}, {}
  distinct = list(dict.fromkeys(configs))
  for index, relative_path in enumerate(distinct, start=1):
    experiment = options[relative_path]
    key = model_key(experiment)
    prefix = f'[{index}/{len(distinct)}] {relative_path}:'
    if key in by_model:
      counts[relative_path] = counts[by_model[key]]
      print(f'{prefix} same model as {by_model[key]}', file=progress,
            flush=True)
      continue
    print(f'{prefix} building ...', file=progress, flush=True)
    start = time.monotonic()
    info = dataset_info_lib.get_dataset_info(
        experiment.train_dataset_options)
    counts[relative_path] = counter(experiment, info)
    by_model[key] = relative_path
    print(f'{prefix} {counts[relative_path]:,} parameters '
          f'({time.monotonic() - start:.1f} s)', file=progress, flush=True)
  return counts


def build_entries(rows: Sequence[paper_table_rows.PaperRow],
                  configs_root: pathlib.Path,
                  counter: Optional[ParamCounter] = None,
                  runs: Sequence[evaluated_runs.EvaluatedRun] = (),
                  progress: TextIO = sys.stderr) -> list[TableEntry]:
  """The table entries; parameters are counted only when `counter` is given."""
  options = {r.config: load_experiment(configs_root, r.config) for r in rows}
  counts = (count_params([r.config for r in rows], options, counter, progress)
            if counter else {})
  entries = []
  for row in rows:
    run = evaluated_runs.latest_match(runs, row.config,
                                      options[row.config].experiment_name)
    entries.append(TableEntry(row, counts.get(row.config), run))
  return entries


def runs_matching_no_row(runs: Sequence[evaluated_runs.EvaluatedRun],
                         configs_root: pathlib.Path):
  names = {r.config: load_experiment(configs_root, r.config).experiment_name
           for r in paper_table_rows.ROWS}
  return [run for run in runs
          if not any(evaluated_runs.matches(run, path, name)
                     for path, name in names.items())]


def _millions(count: Optional[int]) -> str:
  return '-' if count is None else f'{count / 1e6:.2f}M'


def _paper_millions(row: paper_table_rows.PaperRow) -> str:
  if row.paper_params_m is None:
    return '-'
  return f'{row.paper_params_m}M' + ('*' if row.paper_params_source else '')


def _format_table(header: Sequence[str], lines: Sequence[Sequence[str]],
                  right_aligned: Sequence[bool]) -> list[str]:
  widths = [max(len(c) for c in column) for column in zip(header, *lines)]
  out = []
  for cells in (header, *lines):
    padded = [c.rjust(w) if right else c.ljust(w)
              for c, w, right in zip(cells, widths, right_aligned)]
    out.append('  ' + '  '.join(padded).rstrip())
  return out


def render_table(table: str, entries: Sequence[TableEntry],
                 show_params: bool) -> str:
  """One paper table as text, with footnotes for borrowed counts and runs."""
  header = ['row']
  right = [False]
  if show_params:
    header += ['params', 'paper', 'diff']
    right += [True, True, True]
  else:
    header += ['paper params']
    right += [True]
  header += ['PQ', 'PQ-Th', 'PQ-St', 'paper PQ', 'PQ-Th', 'PQ-St', 'config']
  right += [True] * 6 + [False]
  lines, notes = [], []
  for entry in entries:
    row, run = entry.row, entry.run
    cells = [row.row]
    if show_params:
      diff = entry.params_diff_percent
      cells += [_millions(entry.params), _paper_millions(row),
                '-' if diff is None else f'{diff:+.2f}%']
    else:
      cells += [_paper_millions(row)]
    if run:
      cells += [f'{run.pq:.1f}', f'{run.pq_things:.1f}', f'{run.pq_stuff:.1f}']
      notes.append(f'  "{row.row}": {run.metrics_file} (step {run.step})')
    else:
      cells += [NOT_RUN, '', '']
    cells += [f'{row.paper.pq:.1f}', f'{row.paper.pq_things:.1f}',
              f'{row.paper.pq_stuff:.1f}', row.config]
    lines.append(cells)
  out = [paper_table_rows.TABLE_TITLES[table]]
  out += _format_table(header, lines, right)
  borrowed = {}
  for entry in entries:
    if entry.row.paper_params_source:
      borrowed.setdefault(entry.row.paper_params_source, []).append(
          entry.row.row)
  if borrowed:
    out.append('  * count printed elsewhere in the paper:')
    out += [f'    {source}: for {", ".join(repr(r) for r in labels)}'
            for source, labels in borrowed.items()]
  if notes:
    out.append('  evaluated runs:')
    out += ['  ' + n for n in notes]
  return '\n'.join(out)


def render_text(entries: Sequence[TableEntry], show_params: bool,
                other_runs: Sequence[evaluated_runs.EvaluatedRun] = ()) -> str:
  blocks = []
  for table in paper_table_rows.TABLES:
    of_table = [e for e in entries if e.row.table == table]
    if of_table:
      blocks.append(render_table(table, of_table, show_params))
  if other_runs:
    lines = ['Evaluated runs that match no paper row:']
    for run in other_runs:
      lines.append(f'  {run.experiment_name} ({run.config_file}), step '
                   f'{run.step}: PQ {run.pq:.1f}, PQ-Th {run.pq_things:.1f}, '
                   f'PQ-St {run.pq_stuff:.1f}  [{run.metrics_file}]')
    blocks.append('\n'.join(lines))
  return '\n\n'.join(blocks) + '\n'

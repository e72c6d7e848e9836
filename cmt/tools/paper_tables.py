"""`cmt-paper-tables`: the paper's Tables 1, 2a-2d and 3 beside this library.

  cmt-paper-tables [--params] [--json] [--runs DIR] [--configs_root DIR]
                   [--tables 1,2c,...]

For every row (`cmt.evaluation.paper_table_rows.ROWS`): the config that
reproduces it; with --params, the parameter count of the model that config
builds (inference model: the training-only auxiliary semantic head is not
counted, as in DeepLab2), the paper's count and the difference in percent;
with --runs, the PQ / PQ-Th / PQ-St of an evaluated run of that config
(`<model_dir>/eval/metrics.json`) beside the paper's, or "not run".
--json prints the same as a JSON list. Counting builds every model (minutes
for all rows): progress goes to stderr, and nothing is cached on disk.
"""

import argparse
import json
import pathlib
import sys
from typing import Optional, TextIO

from cmt import cli
from cmt import config as config_lib
from cmt.evaluation import evaluated_runs
from cmt.evaluation import paper_table_rows
from cmt.evaluation import paper_tables


def _parse_tables(value: str) -> tuple[str, ...]:
  tables = tuple(t.strip() for t in value.split(',') if t.strip())
  unknown = [t for t in tables if t not in paper_table_rows.TABLE_TITLES]
  if unknown or not tables:
    raise argparse.ArgumentTypeError(
        f'unknown table(s) {unknown or value!r}; choose from '
        f'{", ".join(paper_table_rows.TABLES)}')
  return tables


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(prog='cmt-paper-tables', description=__doc__)
  parser.add_argument('--params', action='store_true',
                      help='build every row\'s model and count its '
                      'parameters (slow: minutes)')
  parser.add_argument('--json', action='store_true',
                      help='print a JSON list instead of tables')
  parser.add_argument('--runs', metavar='DIR', type=cli.local_path,
                      help='folder of evaluated runs (model_dirs with '
                      'eval/metrics.json) to fill the PQ columns')
  parser.add_argument('--configs_root', metavar='DIR', type=cli.local_path,
                      default=str(paper_tables.default_configs_root()),
                      help='folder the registry\'s config paths are relative '
                      'to (default: %(default)s)')
  parser.add_argument('--tables', type=_parse_tables,
                      default=paper_table_rows.TABLES,
                      help='comma-separated subset of: ' +
                      ', '.join(paper_table_rows.TABLES))
  return parser


@cli.command('cmt-paper-tables')
def main(argv=None, param_counter: Optional[paper_tables.ParamCounter] = None,
         stdout: TextIO = None, stderr: TextIO = None) -> int:
  """Runs the tool; `param_counter` replaces the model builder in tests."""
  stdout = stdout or sys.stdout
  stderr = stderr or sys.stderr
  args = build_parser().parse_args(argv)
  configs_root = pathlib.Path(args.configs_root)
  rows = [r for r in paper_table_rows.ROWS if r.table in args.tables]
  counter = ((param_counter or paper_tables.model_param_counter)
             if args.params else None)
  try:
    runs = evaluated_runs.find_runs(args.runs) if args.runs else []
    entries = paper_tables.build_entries(rows, configs_root, counter, runs,
                                         stderr)
    other_runs = paper_tables.runs_matching_no_row(runs, configs_root)
  except (config_lib.ConfigError, evaluated_runs.MetricsError) as error:
    print(f'cmt-paper-tables: error: {cli.one_line(error)}', file=stderr)
    return 1
  if args.json:
    json.dump([e.to_json() for e in entries], stdout, indent=2,
              ensure_ascii=False)
    stdout.write('\n')
    for run in other_runs:
      print(f'note: {run.metrics_file} matches no paper row', file=stderr)
  else:
    stdout.write(paper_tables.render_text(entries, args.params, other_runs))
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

"""`make demo`: the main job on the embedded default, on CPU.

Runs, in order, the steps of the pipeline that exist so far and says where
each output went. Later steps (synthetic data, conversion, training,
evaluation, export, prediction) are added here as they land.
"""

import argparse
import pathlib
import sys
import time

from cmt import config_tool

CONFIG_ROOT = pathlib.Path(__file__).resolve().parent.parent / 'configs'


def _step(title):
  print(f'\n== {title}', flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--output_dir', default='demo_output')
  args = parser.parse_args(argv)
  output_dir = pathlib.Path(args.output_dir).resolve()
  output_dir.mkdir(parents=True, exist_ok=True)
  start = time.time()

  _step('Validating every experiment config')
  configs = sorted(str(p) for p in CONFIG_ROOT.rglob('*.textproto'))
  if config_tool.main(['validate', *configs]) != 0:
    return 1

  _step('Done')
  print(f'{time.time() - start:.1f} s; outputs under {output_dir}')
  print('Training, evaluation and export join this demo as they land; see '
        'README.md, "Status".')
  return 0


if __name__ == '__main__':
  sys.exit(main())

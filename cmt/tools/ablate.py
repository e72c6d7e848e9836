"""`cmt-ablate`: do the CMT components help? The command line of
`cmt.ablation.experiment`, whose docstring says what runs and what is
written."""

import argparse
import os
import time
from typing import Optional, Sequence

from cmt import cli
from cmt.ablation import experiment
from cmt.ablation import rows


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog=experiment.PROG, description=experiment.__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--output_dir', required=True, type=cli.local_path)
  parser.add_argument('--overwrite', action='store_true',
                      help='replace --output_dir (else a rerun with the same '
                      'budget resumes it, adding any new rows or seeds)')
  parser.add_argument('--quick', action='store_true',
                      help='a few steps on a few small images')
  parser.add_argument('--rows', default=','.join(rows.DEFAULT_ROW_KEYS),
                      help='comma-separated (default: %(default)s); the '
                      'rows: ' + ', '.join(rows.ROW_KEYS))
  parser.add_argument('--seeds', type=int, default=None,
                      help='seeds 0..K-1 per row (default '
                      f'{experiment.FULL["num_seeds"]})')
  parser.add_argument('--steps', type=int, default=None,
                      help='training steps per run (default '
                      f'{experiment.FULL["steps"]})')
  parser.add_argument('--image_size', type=int, default=None,
                      help=f'16k + 1 (default {experiment.FULL["image_size"]})')
  parser.add_argument('--num_train', type=int, default=None,
                      help='training images (default '
                      f'{experiment.FULL["num_train"]})')
  parser.add_argument('--num_val', type=int, default=None,
                      help='held-out images (default '
                      f'{experiment.FULL["num_val"]})')
  parser.add_argument('--eval_points', type=int, default=None,
                      help='checkpoints evaluated after step 0, evenly '
                      f'spaced (default {experiment.FULL["eval_points"]})')
  parser.add_argument('--jobs', type=int, default=2,
                      help='runs side by side (default: %(default)s)')
  parser.add_argument('--threads', type=int, default=0,
                      help='intra-op threads per run (default: 2 / --jobs)')
  parser.add_argument('--config_file', default=experiment.DEFAULT_CONFIG,
                      type=cli.local_path,
                      help='the baseline config (default: %(default)s)')
  return parser


@cli.command(experiment.PROG)
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  if args.jobs < 1 or args.threads < 0:
    raise ValueError(f'--jobs={args.jobs} / --threads={args.threads}: '
                     '--jobs must be >= 1 and --threads >= 0')
  settings = experiment.settings_of(args)
  threads = args.threads or max(1, (os.cpu_count() or 2) // args.jobs)
  experiment.prepare_output(args.output_dir, settings, args.overwrite)
  data_dir = os.path.join(args.output_dir, 'data')
  started = time.time()
  print(f'writing the dataset to {data_dir}', flush=True)
  experiment.make_data(data_dir, settings)
  jobs = [experiment.Job(rows.row_of(key), seed,
                         os.path.join(args.output_dir, 'runs', key))
          for seed in settings.seeds for key in settings.rows]
  scheduler = experiment.Scheduler(jobs, settings, data_dir,
                                   args.output_dir, args.jobs, threads)
  print(f'{scheduler.total} of {len(jobs)} runs to do, {args.jobs} at a '
        f'time with {threads} thread(s) each', flush=True)
  scheduler.run(report_every=10.0 if args.quick else 60.0)
  table = experiment.write_outputs(args.output_dir, settings,
                                   time.time() - started)
  print(f'\n{table}\n\nwall time {experiment.clock(time.time() - started)}; '
        f'{os.path.join(args.output_dir, "table.txt")}', flush=True)
  if scheduler.failures:
    raise ValueError(f'{len(scheduler.failures)} run(s) failed; first: '
                     f'{scheduler.failures[0]}')
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

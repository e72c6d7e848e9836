"""`cmt-ablate`: do the CMT components help? Table 2a-2c and Fig. 1 at CPU
scale.

    cmt-ablate --output_dir=O [--quick] [--seeds=3] [--steps=N]
        [--image_size=S] [--num_train=K] [--num_val=V] [--eval_points=P]
        [--jobs=2] [--rows=baseline,clustering_update,...] [--overwrite]

Trains the rows of Table 2a and 2b (`cmt.ablation.rows`: baseline
MaX-DeepLab-S; + clustering update; + pixel-wise contrastive loss; +
reference mask; + coord-conv), and on request Table 2c's decoder rows
(--rows=decoder,clustering_decoder,cmt), as switches of ONE tiny architecture
(configs/demo/ablation_tiny_max_s.textproto), for the same number of steps
and the same seeds, on the hard synthetic dataset (`cmt-synthetic-data
--difficulty=hard`), and evaluates each on its held-out split: PQ, PQ-Th,
PQ-St (mean and standard deviation over seeds) beside the paper's deltas,
the Fig. 1 statistics of the last layer's attention and clustering
assignment (`cmt.ablation.attention_stats`), also at matched PQ
(`cmt.ablation.matched_pq`), the reference-mask hit rate, and the checks
that rule out a silent bug (new variables get gradients, new loss terms
decrease). Each (row, seed) runs in its own process
(`cmt.ablation.run_one`), `--jobs` at a time with `--threads` each. The
budget (steps, data size, crop) defaults to the one where the baseline
learns (docs/MODEL_ZOO.md).

Writes, under O:
  settings.json            the budget (a rerun with the same budget resumes:
                           finished runs are kept, an unfinished one restarts
                           from its last checkpoint, new rows or seeds are
                           added)
  data/                    the dataset (images, COCO JSON, TFRecords)
  runs/<row>/seed<k>/      checkpoints, TensorBoard, eval/metrics.json
  runs/<row>/seed<k>.json  that run's result; .log its console;
                           _fig1.npz its figure material
  results.json, table.txt  every finished run in O (of any invocation),
                           rewritten after each one
  fig1.png                 Fig. 1's layout for the baseline and a CMT row
                           (`cmt.ablation.figure`), first seed

`--quick` (seconds of training, a few images; its numbers mean nothing)
checks that everything runs.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Optional, Sequence

from cmt import atomic_files
from cmt.ablation import figure
from cmt.ablation import report
from cmt.ablation import rows as rows_lib
from cmt.ablation import run_one
from cmt.evaluation import paper_tables

DEFAULT_CONFIG = str(paper_tables.default_configs_root() / 'demo' /
                     'ablation_tiny_max_s.textproto')
PROG = 'cmt-ablate'


@dataclasses.dataclass(frozen=True)
class Settings:
  """What a run of cmt-ablate computes (a rerun must match to resume)."""
  config_file: str
  rows: tuple
  seeds: tuple
  steps: int
  image_size: int
  num_train: int
  num_val: int
  eval_points: int = 3
  difficulty: str = 'hard'
  data_seed: int = 0

  def to_json(self) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}

  def budget(self) -> dict:
    """What every run in one output folder shares: all but rows and seeds."""
    return budget_of(self.to_json())


def budget_of(settings_json: dict) -> dict:
  return {k: v for k, v in settings_json.items() if k not in ('rows', 'seeds')}


# The full run: the budget where the baseline learns (PQ >= 30 on the
# held-out split), sized on this 2-core machine (docs/MODEL_ZOO.md).
FULL = dict(steps=1440, num_seeds=3, image_size=129, num_train=600,
            num_val=100, eval_points=3)
QUICK = dict(steps=4, num_seeds=1, image_size=33, num_train=4, num_val=2,
             eval_points=1)


def settings_of(args) -> Settings:
  defaults = QUICK if args.quick else FULL
  pick = lambda name, key=None: (getattr(args, name) if getattr(
      args, name) is not None else defaults[key or name])
  keys = tuple(k.strip() for k in args.rows.split(',') if k.strip())
  for key in keys:
    rows_lib.row_of(key)  # ValueError naming it
  settings = Settings(
      config_file=os.path.abspath(args.config_file), rows=keys,
      seeds=tuple(range(pick('seeds', 'num_seeds'))), steps=pick('steps'),
      image_size=pick('image_size'), num_train=pick('num_train'),
      num_val=pick('num_val'), eval_points=pick('eval_points'))
  for name in ('steps', 'num_train', 'num_val', 'eval_points'):
    if getattr(settings, name) < 1:
      raise ValueError(f'--{name}={getattr(settings, name)}: must be >= 1')
  if not settings.seeds or not keys:
    raise ValueError('--seeds and --rows must not be empty')
  if settings.image_size < 33 or (settings.image_size - 1) % 16:
    raise ValueError(f'--image_size={settings.image_size}: must be 16 k + 1 '
                     '(the crop rule at output stride 16), >= 33')
  if not os.path.isfile(settings.config_file):
    raise FileNotFoundError(2, 'No such file', args.config_file)
  return settings


def prepare_output(output_dir: str, settings: Settings,
                   overwrite: bool) -> None:
  """Creates, resumes or (with --overwrite) replaces `output_dir`. Runs of
  one budget share a folder: a rerun may add rows or seeds."""
  path = os.path.join(output_dir, 'settings.json')
  if os.path.lexists(output_dir) and os.listdir(output_dir):
    if overwrite:
      shutil.rmtree(output_dir)
    else:
      try:
        with open(path, encoding='utf-8') as f:
          previous = budget_of(json.load(f))
      except (OSError, ValueError, AttributeError):
        previous = None
      budget = settings.budget()
      if previous != budget:
        differing = 'no settings.json' if previous is None else '; '.join(
            f'{k}: {previous.get(k)!r} there, {v!r} here'
            for k, v in budget.items() if previous.get(k) != v)
        raise FileExistsError(
            f'{output_dir} holds no cmt-ablate run of this budget '
            f'({differing}); pass --overwrite to replace it, or the same '
            'budget to resume or extend it')
      return
  os.makedirs(output_dir, exist_ok=True)
  with atomic_files.open_atomic(path) as f:
    json.dump(settings.budget(), f, indent=1)


def crop_overrides(size: int) -> list[str]:
  return [f'{options}.{field}' for options in (
      'train_dataset_options', 'eval_dataset_options') for field in (
          f'crop_size={size},{size}', f'min_resize_value={size}',
          f'max_resize_value={size}')]


def make_data(data_dir: str, settings: Settings) -> None:
  """The dataset and its TFRecords (kept when a rerun finds them)."""
  if os.path.isdir(data_dir):
    return
  # pylint: disable=g-import-not-at-top
  from cmt.data import build_data
  from cmt.data import dataset_info
  from cmt.data import synthetic
  with atomic_files.atomic_directory(data_dir) as temporary:
    synthetic.write_dataset(
        temporary, settings.num_train, settings.num_val,
        (settings.image_size, settings.image_size), settings.data_seed,
        synthetic.DIFFICULTIES[settings.difficulty])
    info = dataset_info.from_categories_json(
        os.path.join(temporary, 'categories.json'))
    for split in ('train', 'val'):
      build_data.build(
          os.path.join(temporary, 'images', split),
          os.path.join(temporary, f'panoptic_{split}.json'),
          os.path.join(temporary, 'panoptic', split),
          os.path.join(temporary, 'tfrecords'), info, split,
          num_shards=min(2, getattr(settings, f'num_{split}')), num_workers=1,
          show_progress=False)


@dataclasses.dataclass
class Job:
  row: rows_lib.AblationRow
  seed: int
  folder: str  # runs/<row>

  # The file name of a finished run's result in `folder` (`result_json`).
  RESULT_NAME = re.compile(r'seed(\d+)\.json')

  @property
  def name(self) -> str:
    return f'{self.row.key} seed {self.seed}'

  @property
  def model_dir(self) -> str:
    return os.path.join(self.folder, f'seed{self.seed}')

  @property
  def result_json(self) -> str:
    return self.model_dir + '.json'

  @property
  def log(self) -> str:
    return self.model_dir + '.log'

  def command(self, settings: Settings, data_dir: str,
              threads: int) -> list[str]:
    overrides = self.row.overrides() + crop_overrides(settings.image_size)
    return [sys.executable, '-m', 'cmt.ablation.run_one',
            f'--config_file={settings.config_file}',
            f'--model_dir={self.model_dir}', f'--data_dir={data_dir}',
            f'--seed={self.seed}', f'--steps={settings.steps}',
            f'--threads={threads}', f'--result_json={self.result_json}',
            f'--eval_points={settings.eval_points}',
            *[f'--override={o}' for o in overrides]]

  def progress(self) -> float:
    """Fraction of its training steps done, read from its log."""
    try:
      with open(self.log, encoding='utf-8', errors='replace') as f:
        lines = [l for l in f.read().splitlines() if l.startswith('step ')]
    except OSError:
      return 0.0
    if not lines:
      return 0.0
    done, total = lines[-1].split()[1].split('/')
    return int(done) / max(int(total), 1)


def finished_jobs(output_dir: str) -> list[Job]:
  """Every finished run under `output_dir`, of any row or seed, in row
  order: the table covers the whole folder, whichever rows were asked."""
  jobs = []
  for row in rows_lib.ROWS:
    folder = os.path.join(output_dir, 'runs', row.key)
    names = os.listdir(folder) if os.path.isdir(folder) else ()
    matches = (Job.RESULT_NAME.fullmatch(name) for name in names)
    seeds = sorted(int(match.group(1)) for match in matches if match)
    jobs += [Job(row, seed, folder) for seed in seeds]
  return jobs


def load_results(jobs: Sequence[Job]) -> dict:
  results = {}
  for job in jobs:
    if os.path.isfile(job.result_json):
      with open(job.result_json, encoding='utf-8') as f:
        results.setdefault(job.row.key, []).append(json.load(f))
  return results


def write_outputs(output_dir: str, settings: Settings,
                  wall_seconds: float) -> str:
  """results.json and table.txt from the finished runs; returns the table."""
  jobs = finished_jobs(output_dir)
  results = load_results(jobs)
  summaries = report.summarize(results)
  title = (f'cmt-ablate: {settings.steps} steps per run (n: seeds), hard '
           f'synthetic {settings.image_size}x{settings.image_size}, '
           f'{settings.num_train} train / {settings.num_val} held-out images')
  table = report.format_table(summaries, title)
  write_figure(output_dir, jobs)
  with atomic_files.open_atomic(os.path.join(output_dir,
                                             'results.json')) as f:
    json.dump({'settings': settings.to_json(), 'summaries': summaries,
               'wall_seconds': wall_seconds, 'runs': results}, f, indent=1)
  with atomic_files.open_atomic(os.path.join(output_dir, 'table.txt')) as f:
    f.write(table + '\n')
  return table


# The CMT row of the figure: the first of these that ran (the whole of
# CMT-DeepLab, else Table 2a's last row, else its first).
FIGURE_CMT_ROWS = ('cmt', 'pixel_contrastive', 'clustering_update')


def write_figure(output_dir: str, jobs: Sequence[Job]) -> Optional[str]:
  """fig1.png from the first seed's material of the baseline and of a
  CMT row, once both exist; returns its path."""
  first = {}
  for job in jobs:
    path = run_one.figure_path(job.result_json)
    if os.path.isfile(job.result_json) and os.path.isfile(path):
      first.setdefault(job.row.key, (job.row.label, path))
  keys = [rows_lib.BASELINE.key] + [k for k in FIGURE_CMT_ROWS if k in first]
  if rows_lib.BASELINE.key not in first or len(keys) < 2:
    return None
  materials = [(first[k][0], figure.load_material(first[k][1]))
               for k in keys[:2]]
  path = os.path.join(output_dir, 'fig1.png')
  figure.write(path, materials)
  return path


def clock(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  return f'{minutes // 60}h{minutes % 60:02d}m' if minutes >= 60 else (
      f'{minutes}m{seconds:02d}s')


class Scheduler:
  """Runs the jobs `jobs_at_once` at a time; prints progress and ETA."""

  def __init__(self, jobs, settings, data_dir, output_dir, jobs_at_once,
               threads):
    self.queue = [j for j in jobs if not os.path.isfile(j.result_json)]
    self.settings, self.data_dir = settings, data_dir
    self.output_dir = output_dir
    self.jobs_at_once, self.threads = jobs_at_once, threads
    self.running = {}  # Job -> (Popen, start time)
    self.durations, self.failures = [], []
    self.start = time.time()
    self.total = len(self.queue)

  def _launch(self, job: Job):
    os.makedirs(job.folder, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get(
        'TF_CPP_MIN_LOG_LEVEL', '3'))
    with open(job.log, 'a', encoding='utf-8') as log:
      process = subprocess.Popen(
          job.command(self.settings, self.data_dir, self.threads),
          stdout=log, stderr=subprocess.STDOUT, env=env)
    self.running[id(job)] = (job, process, time.time())

  def _eta(self) -> str:
    if not self.durations:
      return 'ETA after the first run'
    mean = sum(self.durations) / len(self.durations)
    # Training is most of a run; tracing and evaluation the rest.
    left = len(self.queue) + sum(1 - 0.8 * j.progress() for j, _, _ in
                                 self.running.values())
    return f'ETA {clock(left * mean / self.jobs_at_once)}'

  def _line(self) -> str:
    running = ', '.join(f'{j.name} {j.progress():.0%}'
                        for j, _, _ in self.running.values())
    done = self.total - len(self.queue) - len(self.running)
    return (f'[{done}/{self.total} done, {clock(time.time() - self.start)}] '
            f'running: {running or "-"} | {self._eta()}')

  def _finish(self, key, status):
    job, _, started = self.running.pop(key)
    if status == 0 and os.path.isfile(job.result_json):
      self.durations.append(time.time() - started)
      print(f'finished {job.name} in {clock(time.time() - started)}',
            flush=True)
      print(write_outputs(self.output_dir, self.settings,
                          time.time() - self.start), flush=True)
    else:
      with open(job.log, encoding='utf-8', errors='replace') as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
      self.failures.append(f'{job.log}: {lines[-1] if lines else status}')
      print(f'FAILED {job.name} (status {status}); see {job.log}', flush=True)

  def run(self, report_every: float = 60.0) -> None:
    last_report = 0.0
    try:
      while self.queue or self.running:
        while self.queue and len(self.running) < self.jobs_at_once:
          self._launch(self.queue.pop(0))
        for key, (_, process, _) in list(self.running.items()):
          status = process.poll()
          if status is not None:
            self._finish(key, status)
        if time.time() - last_report >= report_every:
          print(self._line(), flush=True)
          last_report = time.time()
        time.sleep(1.0)
    finally:
      for _, process, _ in self.running.values():
        process.terminate()
        process.wait()

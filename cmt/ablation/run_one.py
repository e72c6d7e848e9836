"""One (row, seed) of `cmt-ablate`, in its own process (the parent runs
several side by side, each with its own threads).

    python -m cmt.ablation.run_one --config_file=F --model_dir=D
        --data_dir=SYNTHETIC --seed=S --steps=T --threads=K
        --result_json=R [--eval_points=P] [--override field.path=value ...]

Trains (`cmt-train`'s run, mode train; a rerun resumes from the checkpoint
in D), keeping the initialisation (step 0) and P evenly spaced checkpoints
(the last at step T). Then evaluates every kept checkpoint on the held-out
split: PQ (mode eval, D/eval/metrics.json; not at step 0) and the Fig. 1
statistics of `cmt.ablation.attention_stats`; the last checkpoint's are the
run's result, the others feed the matched-PQ comparison and the reference-
mask hit rate at the start of training. Records the checks that rule out a
silent bug: the gradient norm of every trainable variable on one training
batch after training, and the loss terms at the start and the end of
training (TensorBoard scalars). Writes R (JSON) atomically at the end, and
beside it R without .json + _fig1.npz: the figure material of the first
held-out image (`cmt.ablation.figure`).
"""

import argparse
import glob
import io
import json
import os
import time
from typing import Optional, Sequence

import numpy as np

from cmt import atomic_files
from cmt import cli
from cmt import config as config_lib

# Loss terms whose first and last values are recorded.
LOSS_TAGS = ('total_loss', 'pq_style_loss', 'mask_id_cross_entropy_loss',
             'instance_discrimination_loss', 'semantic_loss',
             'mask_approximation_loss')


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(prog='cmt-ablate (run)', description=__doc__)
  for name in ('config_file', 'model_dir', 'data_dir', 'result_json'):
    parser.add_argument(f'--{name}', required=True)
  parser.add_argument('--seed', type=int, required=True)
  parser.add_argument('--steps', type=int, required=True)
  parser.add_argument('--threads', type=int, default=0,
                      help='intra-op threads (0: TensorFlow decides)')
  parser.add_argument('--eval_points', type=int, default=3,
                      help='evaluated checkpoints after step 0 (evenly '
                      'spaced; the last at --steps)')
  config_lib.add_config_flags(parser)
  return parser


def val_examples(data_dir: str):
  """(image uint8, segment ids, {'things' | 'stuff': segment ids}) of the
  val split of a `cmt-synthetic-data` folder, in file-name order."""
  # pylint: disable=g-import-not-at-top
  from cmt.data import build_data
  from cmt.data import panoptic_label
  with open(os.path.join(data_dir, 'categories.json'), encoding='utf-8') as f:
    things = {c['id'] for c in json.load(f) if c['isthing']}
  tasks = build_data.read_tasks(
      os.path.join(data_dir, 'images', 'val'),
      os.path.join(data_dir, 'panoptic_val.json'),
      os.path.join(data_dir, 'panoptic', 'val'))

  def rgb(path, what):
    with open(path, 'rb') as f:
      image = panoptic_label.read_rgb(path, f.read(), what)
    return np.asarray(image.convert('RGB'))

  for task in tasks:
    segments = task.segments_info
    png = rgb(task.png_path, 'the panoptic PNG')
    yield rgb(task.image_path, 'the image'), panoptic_label.rgb_to_id(png), {
        'things': [s['id'] for s in segments if s['category_id'] in things],
        'stuff': [s['id'] for s in segments
                  if s['category_id'] not in things]}


def loss_curves(summary_dir: str) -> dict:
  """{loss tag: [(step, value), ...]} from the TensorBoard files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  curves = {}
  for path in sorted(glob.glob(os.path.join(summary_dir, 'events.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tag = value.tag.split('/')[-1]
        if tag in LOSS_TAGS:
          number = float(tf.make_ndarray(value.tensor)) if value.HasField(
              'tensor') else float(value.simple_value)
          curves.setdefault(tag, []).append((int(event.step), number))
  return {tag: sorted(points) for tag, points in curves.items()}


def start_and_end(points, share: float = 0.1) -> dict:
  """Mean of the first and of the last `share` of a loss curve."""
  values = [v for _, v in points]
  count = max(1, int(len(values) * share))
  return {'start': float(np.mean(values[:count])),
          'end': float(np.mean(values[-count:])), 'points': len(values)}


def gradient_norms(trainer) -> dict:
  """{variable name: L2 norm of its gradient (None if no gradient)} on one
  training batch."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  batch = next(trainer.make_train_iterator())
  _, gradients = trainer.compute_gradients(batch)
  return {v.name: (None if g is None else float(tf.norm(
      tf.convert_to_tensor(g))))
          for v, g in zip(trainer.model.trainable_variables, gradients)}


def checkpoint_overrides(steps: int, eval_points: int) -> list[str]:
  """Checkpoints every steps / eval_points steps, all of them kept (with the
  one of step 0)."""
  return [f'trainer_options.save_checkpoints_steps='
          f'{max(1, steps // max(eval_points, 1))}',
          f'trainer_options.num_checkpoints_to_keep={eval_points + 2}']


def train(options, model_dir: str, strategy, config_file: str):
  """Trains to the configured step, first saving the initialisation as the
  step-0 checkpoint; returns the run (`cmt.trainer.train_lib.Run`)."""
  from cmt.trainer import train_lib  # pylint: disable=g-import-not-at-top
  solver = options.trainer_options.solver_options
  with train_lib.precision_policy(solver):
    run = train_lib.build_run('train', options, model_dir, strategy,
                              config_file=config_file, print_fn=print)
    if run.checkpoint_manager.latest_checkpoint is None:
      run.controller.save_checkpoint()
    run.controller.train(steps=solver.training_number_of_steps)
  return run


def checkpoint_step(path: str) -> int:
  """The global step of a `ckpt-<step>` prefix (saved by step number)."""
  return int(path.rsplit('-', 1)[1])


def evaluate_checkpoints(options, model_dir: str, data_dir: str, strategy,
                         config_file: str, steps: Optional[Sequence[int]] = None
                         ) -> tuple[list[dict], dict, dict]:
  """([{step, metrics (None at step 0), statistics}] over the kept
  checkpoints (those of `steps` if given), the last one's per-segment
  values, its figure material)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cmt import export  # pylint: disable=g-import-not-at-top
  from cmt.ablation import attention_stats  # pylint: disable=g-import-not-at-top
  from cmt.data import dataset_info as dataset_info_lib  # pylint: disable=g-import-not-at-top
  from cmt.trainer import train_lib  # pylint: disable=g-import-not-at-top
  solver = options.trainer_options.solver_options
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    raise ValueError(f'{model_dir}: no checkpoint to evaluate')
  paths = sorted((p for p in state.all_model_checkpoint_paths
                  if steps is None or checkpoint_step(p) in steps),
                 key=checkpoint_step)
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  evaluated, measured, figure = [], {}, {}
  with train_lib.precision_policy(solver):
    run = train_lib.build_run('eval', options, model_dir, strategy,
                              config_file=config_file,
                              print_fn=lambda line: None)
    inference = export.PanopticInference(run.model, options, info)
    for path in paths:
      run.checkpoint_manager.checkpoint.restore(path).expect_partial()
      step, metrics = checkpoint_step(path), None
      if step > 0:
        run.controller.evaluate(
            steps=options.evaluator_options.eval_steps or -1)
        with open(os.path.join(model_dir, 'eval', 'metrics.json'),
                  encoding='utf-8') as f:
          found = json.load(f)['metrics']
        metrics = {k: found[k] for k in (
            'pq', 'pq_things', 'pq_stuff', 'sq', 'rq', 'num_images')}
      measured, figure = attention_stats.measure(inference,
                                                 val_examples(data_dir))
      evaluated.append({'step': step, 'metrics': metrics,
                        'statistics': attention_stats.run_means(measured)})
  return evaluated, measured, figure


def save_figure_material(path: str, figure: dict) -> None:
  """The figure material as one .npz (written atomically)."""
  arrays = {k: np.asarray(v) for k, v in figure.items()
            if k not in ('things', 'stuff')}
  for kind in ('things', 'stuff'):
    for key, values in figure.get(kind, {}).items():
      arrays[f'{kind}_{key}'] = np.asarray(values, np.int64)
  buffer = io.BytesIO()  # zip needs a seekable file; a GFile is not one
  np.savez_compressed(buffer, **arrays)
  with atomic_files.open_atomic(path, 'wb') as f:
    f.write(buffer.getvalue())


def figure_path(result_json: str) -> str:
  return os.path.splitext(result_json)[0] + '_fig1.npz'


def run(args) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  import tf_keras  # pylint: disable=g-import-not-at-top
  data = args.data_dir
  params = {'TRAIN_SET': os.path.join(data, 'tfrecords', 'train-*'),
            'VAL_SET': os.path.join(data, 'tfrecords', 'val-*'),
            'CATEGORIES_JSON': os.path.join(data, 'categories.json'),
            **config_lib.parse_params(args.param)}
  overrides = list(args.override) + checkpoint_overrides(
      args.steps, args.eval_points) + [
      f'trainer_options.solver_options.training_number_of_steps={args.steps}',
      # The paper's warm-up share: 5k of 100k steps.
      f'trainer_options.solver_options.warmup_steps={max(1, args.steps // 20)}',
      f'train_dataset_options.seed={args.seed + 1}']
  options = config_lib.load_config(args.config_file, params, overrides)
  tf_keras.utils.set_random_seed(args.seed)
  strategy = tf.distribute.get_strategy()
  start = time.time()
  trained = train(options, args.model_dir, strategy, args.config_file)
  train_seconds = time.time() - start
  norms = gradient_norms(trained.trainer)
  evaluated, measured, figure = evaluate_checkpoints(
      options, args.model_dir, data, strategy, args.config_file)
  save_figure_material(figure_path(args.result_json), figure)
  curves = loss_curves(os.path.join(args.model_dir, 'train'))
  return {
      'seed': args.seed, 'steps': args.steps, 'overrides': args.override,
      'metrics': evaluated[-1]['metrics'],
      'statistics': evaluated[-1]['statistics'],
      'checkpoints': evaluated,
      'segment_values': measured,
      'losses': {tag: start_and_end(points) for tag, points in curves.items()},
      'gradient_norms': norms,
      'train_seconds': train_seconds,
      'seconds': time.time() - start,
  }


@cli.command('cmt-ablate (run)')
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  result = run(args)
  with atomic_files.open_atomic(args.result_json) as f:
    json.dump(result, f, indent=1)
  return 0


if __name__ == '__main__':
  cli.entry_point(main)()

"""One (row, seed) of `cmt-ablate`, in its own process (the parent runs
several side by side, each with its own threads).

    python -m cmt.ablation.run_one --config_file=F --model_dir=D
        --data_dir=SYNTHETIC --seed=S --steps=T --threads=K
        --result_json=R [--override field.path=value ...]

Trains (`cmt-train`'s `train_lib.run_experiment`, mode train; a rerun
resumes from the checkpoint in D), evaluates PQ on the held-out split (mode
eval, D/eval/metrics.json), measures the attention density
(`cmt.ablation.density`) on the same split, and records the checks that
rule out a silent bug: the gradient norm of every trainable variable on one
training batch after training, and the loss terms at the start and the end
of training (TensorBoard scalars). Writes R (JSON) atomically at the end.
"""

import argparse
import glob
import json
import os
import time
from typing import Optional, Sequence

import numpy as np

from cmt import atomic_files
from cmt import cli

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
  parser.add_argument('--override', action='append', default=[])
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


def run(args) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  import tf_keras  # pylint: disable=g-import-not-at-top
  from cmt import config as config_lib  # pylint: disable=g-import-not-at-top
  from cmt import export  # pylint: disable=g-import-not-at-top
  from cmt.ablation import density  # pylint: disable=g-import-not-at-top
  from cmt.data import dataset_info as dataset_info_lib  # pylint: disable=g-import-not-at-top
  from cmt.trainer import train_lib  # pylint: disable=g-import-not-at-top
  data = args.data_dir
  params = {'TRAIN_SET': os.path.join(data, 'tfrecords', 'train-*'),
            'VAL_SET': os.path.join(data, 'tfrecords', 'val-*'),
            'CATEGORIES_JSON': os.path.join(data, 'categories.json')}
  overrides = list(args.override) + [
      f'trainer_options.solver_options.training_number_of_steps={args.steps}',
      # The paper's warm-up share: 5k of 100k steps.
      f'trainer_options.solver_options.warmup_steps={max(1, args.steps // 20)}',
      f'train_dataset_options.seed={args.seed + 1}']
  options = config_lib.load_config(args.config_file, params, overrides)
  tf_keras.utils.set_random_seed(args.seed)
  strategy = tf.distribute.get_strategy()
  quiet = lambda line: None
  start = time.time()
  trained = train_lib.run_experiment('train', options, args.model_dir,
                                     strategy, config_file=args.config_file,
                                     print_fn=print)
  train_seconds = time.time() - start
  norms = gradient_norms(trained.trainer)
  train_lib.run_experiment('eval', options, args.model_dir, strategy,
                           config_file=args.config_file, print_fn=quiet)
  with open(os.path.join(args.model_dir, 'eval', 'metrics.json'),
            encoding='utf-8') as f:
    metrics = json.load(f)
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  inference = export.PanopticInference(trained.model, options, info)
  measured = density.measure(inference, val_examples(data))
  curves = loss_curves(os.path.join(args.model_dir, 'train'))
  return {
      'seed': args.seed, 'steps': args.steps, 'overrides': args.override,
      'metrics': {k: metrics['metrics'][k] for k in (
          'pq', 'pq_things', 'pq_stuff', 'sq', 'rq', 'num_images')},
      'density': measured,
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

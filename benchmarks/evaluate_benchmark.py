"""`cmt-evaluate` against COCO's panopticapi on the same real COCO pairs.

Replicates the real COCO val2017 ground truth of `../shared/data/
coco_panoptic_sample` (640x427 and 640x360) to --images pairs in a
temporary folder. Each prediction is its ground truth shifted sideways by a
few pixels (the PNG rolled, so every segment keeps its id and area) with
every fifth segment given another category of its kind, so PQ is neither
0 nor 100. Then, on the same pairs:

  panopticapi  `pq_compute_single_core` (COCO's own per-image function),
               in this process, one core;
  cmt-evaluate the whole command (`python -m cmt.tools.evaluate`,
               start-up included) with --workers 1 and with its default
               (every core);

and prints images per second and PQ for each. panopticapi is not part of
this project and is never installed or committed with it: pass a checkout
of github.com/cocodataset/panopticapi (the directory holding the
`panopticapi` package) with --panopticapi or $PANOPTICAPI_DIR; without one
only cmt-evaluate is timed.

    python benchmarks/evaluate_benchmark.py --panopticapi /tmp/panopticapi \
        [--images 600]
"""

import argparse
import contextlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
COCO_SAMPLE = REPO_ROOT.parent / 'shared' / 'data' / 'coco_panoptic_sample'


def _other_category(category_id: int, categories: list) -> int:
  """Another category of the same kind (thing / stuff)."""
  kind = {c['id']: c['isthing'] for c in categories}
  same = [c['id'] for c in categories
          if c['isthing'] == kind[category_id] and c['id'] != category_id]
  return same[category_id % len(same)]


def write_pairs(sample: pathlib.Path, folder: pathlib.Path, count: int):
  """Ground truth and predictions for `count` images (module docstring)."""
  data = json.loads((sample / 'panoptic_examples.json').read_text())
  categories = data['categories']
  for name in ('gt', 'pred'):
    (folder / name).mkdir(parents=True)
  gt_json = {'images': [], 'annotations': [], 'categories': categories}
  pred_json = {'annotations': []}
  sources = data['annotations']
  for index in range(count):
    annotation = sources[index % len(sources)]
    file_name = f'{index:012d}.png'
    shutil.copyfile(sample / 'panoptic' / annotation['file_name'],
                    folder / 'gt' / file_name)
    rgb = np.asarray(Image.open(sample / 'panoptic' /
                                annotation['file_name']).convert('RGB'))
    Image.fromarray(np.roll(rgb, 2 + index % 7, axis=1)).save(
        folder / 'pred' / file_name)
    gt_json['images'].append({'id': index, 'file_name': file_name})
    gt_json['annotations'].append({**annotation, 'image_id': index,
                                   'file_name': file_name})
    segments = []
    for number, segment in enumerate(annotation['segments_info']):
      category = segment['category_id']
      if number % 5 == 4:
        category = _other_category(category, categories)
      segments.append({'id': segment['id'], 'category_id': category,
                       'iscrowd': 0})
    pred_json['annotations'].append({'image_id': index,
                                     'file_name': file_name,
                                     'segments_info': segments})
  (folder / 'gt.json').write_text(json.dumps(gt_json))
  (folder / 'pred.json').write_text(json.dumps(pred_json))


def time_panopticapi(checkout: str, folder: pathlib.Path
                     ) -> tuple[float, float]:
  """(images per second, PQ) of panopticapi's single-core function."""
  sys.path.insert(0, checkout)
  from panopticapi import evaluation  # pylint: disable=g-import-not-at-top
  gt = json.loads((folder / 'gt.json').read_text())
  pred = json.loads((folder / 'pred.json').read_text())
  categories = {c['id']: c for c in gt['categories']}
  by_id = {a['image_id']: a for a in pred['annotations']}
  pairs = [(a, by_id[a['image_id']]) for a in gt['annotations']]
  start = time.perf_counter()
  with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
    stat = evaluation.pq_compute_single_core(
        0, pairs, str(folder / 'gt'), str(folder / 'pred'), categories)
  seconds = time.perf_counter() - start
  result, _ = stat.pq_average(categories, isthing=None)
  return len(pairs) / seconds, 100 * result['pq']


def time_cmt_evaluate(folder: pathlib.Path, workers) -> tuple[float, float]:
  """(images per second, PQ) of the whole `cmt-evaluate` command."""
  output = folder / 'metrics.json'
  command = [sys.executable, '-m', 'cmt.tools.evaluate',
             f'--gt_json={folder / "gt.json"}', f'--gt_folder={folder / "gt"}',
             f'--pred_json={folder / "pred.json"}',
             f'--pred_folder={folder / "pred"}', f'--output_json={output}']
  if workers:
    command.append(f'--workers={workers}')
  start = time.perf_counter()
  subprocess.run(command, check=True, capture_output=True, cwd=REPO_ROOT)
  seconds = time.perf_counter() - start
  metrics = json.loads(output.read_text())
  return metrics['num_images'] / seconds, metrics['pq']


def main() -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n')[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--images', type=int, default=600)
  parser.add_argument('--panopticapi',
                      default=os.environ.get('PANOPTICAPI_DIR'),
                      help='directory holding the panopticapi package')
  parser.add_argument('--coco_sample', default=str(COCO_SAMPLE))
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as temporary:
    folder = pathlib.Path(temporary)
    write_pairs(pathlib.Path(args.coco_sample), folder, args.images)
    print(f'{args.images} real COCO pairs (640x427, 640x360); '
          f'{os.cpu_count()} cores')
    rows = []
    if args.panopticapi:
      rows.append(('panopticapi pq_compute_single_core',
                   *time_panopticapi(args.panopticapi, folder)))
    rows.append(('cmt-evaluate --workers 1 (whole command)',
                 *time_cmt_evaluate(folder, 1)))
    rows.append(('cmt-evaluate, default workers (whole command)',
                 *time_cmt_evaluate(folder, None)))
  for name, speed, pq in rows:
    print(f'{name:48s} {speed:7.1f} images/s   PQ {pq:.4f}')
  if args.panopticapi:
    print(f'cmt-evaluate --workers 1 / panopticapi: '
          f'{rows[1][1] / rows[0][1]:.2f}x')
  return 0


if __name__ == '__main__':
  sys.exit(main())

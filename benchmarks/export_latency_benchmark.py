"""Inference latency: the exported SavedModel against the in-process model.

Times, on the same uint8 images, one call of
  in-process  `cmt.export.build_inference(options, checkpoint).serve` (the
              config + checkpoint in this process, the function cmt-export
              saves: preprocessing, model, post-processing, resize back)
  SavedModel  `tf.saved_model.load(path).signatures['serving_default']`
              (what cmt-predict and a client without `cmt` call)
and prints the median and fastest call of each, their ratio, and the load
time of each. By default it reads a finished `make demo` output:

  python benchmarks/export_latency_benchmark.py --demo_dir=demo_output
  python benchmarks/export_latency_benchmark.py --config_file=F \
      --checkpoint_path=C --model=SAVEDMODEL --images='DIR/*.jpg'
"""

import argparse
import glob
import pathlib
import statistics
import sys
import time

import numpy as np
from PIL import Image


def _seconds(function, images, repeats: int) -> tuple[float, float]:
  """(median, minimum) wall time of one call over `repeats` rounds."""
  times = []
  for index in range(repeats):
    image = images[index % len(images)]
    start = time.perf_counter()
    function(image)
    times.append(time.perf_counter() - start)
  return statistics.median(times), min(times)


def main(argv=None) -> int:
  # pylint: disable=g-import-not-at-top
  from cmt.tools import demo
  from cmt import export
  from cmt.tools import flags
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--demo_dir', help='a `cmt-demo` output '
                      'folder: fills every other flag')
  flags.add_model_flags(parser, required=False)
  parser.add_argument('--model', help='SavedModel written by cmt-export')
  parser.add_argument('--images', help='GLOB of images to run on')
  parser.add_argument('--repeats', type=int, default=50)
  args = parser.parse_args(argv)
  if args.demo_dir:
    layout = demo.Layout(pathlib.Path(args.demo_dir).resolve())
    args.config_file = args.config_file or str(demo.DEFAULT_CONFIG)
    args.checkpoint_path = args.checkpoint_path or str(layout.model_dir)
    args.param = args.param or layout.dataset_params()
    args.model = args.model or str(layout.saved_model)
    args.images = args.images or str(
        layout.synthetic / 'images' / 'val' / '*.jpg')
  missing = [f for f in ('config_file', 'checkpoint_path', 'model', 'images')
             if not getattr(args, f)]
  if missing:
    parser.error('give --demo_dir or --' + ', --'.join(missing))
  paths = sorted(glob.glob(args.images))[:8]
  if not paths:
    parser.error(f'--images={args.images} matches no file')
  images = [np.asarray(Image.open(p).convert('RGB')) for p in paths]

  import tensorflow as tf
  start = time.perf_counter()
  inference = export.build_inference(flags.load_model_options(args),
                                     args.checkpoint_path)
  in_process_load = time.perf_counter() - start
  start = time.perf_counter()
  loaded = tf.saved_model.load(args.model)
  serve = loaded.signatures[export.SERVING_SIGNATURE]
  saved_load = time.perf_counter() - start

  callers = {
      'in-process': lambda image: inference.serve(tf.constant(image)),
      'SavedModel': lambda image: serve(image=tf.constant(image)),
  }
  for call in callers.values():  # trace / warm up
    for image in images:
      call(image)
  figures = {name: _seconds(call, images, args.repeats)
             for name, call in callers.items()}
  height, width = images[0].shape[:2]
  print(f'{len(images)} images of {height}x{width}, {args.repeats} calls each')
  print(f'{"":11s} {"load s":>7s} {"median ms":>10s} {"fastest ms":>11s}')
  for name, load in (('in-process', in_process_load),
                     ('SavedModel', saved_load)):
    median, fastest = figures[name]
    print(f'{name:11s} {load:7.1f} {median * 1e3:10.1f} {fastest * 1e3:11.1f}')
  ratio = figures['SavedModel'][0] / figures['in-process'][0]
  print(f'SavedModel / in-process (median): {ratio:.2f}x')
  return 0


if __name__ == '__main__':
  sys.exit(main())

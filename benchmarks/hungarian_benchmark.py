"""Times the TensorFlow Hungarian solver against scipy's.

`cmt.model.loss.hungarian.hungarian_match`, compiled with XLA
(`tf.function(jit_compile=True)`), against
`scipy.optimize.linear_sum_assignment` called once per batch element, on
random uniform costs of shape [B, 100, 128] (100 padded ground-truth masks
against 128 cluster centers, the paper's N). Prints the median wall time
per call of each and their ratio, and the same for the fastest call (the
least disturbed by other processes on a shared machine); also the time of
a trivial compiled function on the same input, the fixed cost of calling
into TensorFlow that no solver can avoid (inside a compiled training step
it is not paid). Goal: the solver within 3x of scipy.

  python benchmarks/hungarian_benchmark.py [--repeats 200] [--shapes 1,100,128 8,100,128]
"""

import argparse
import statistics
import time

import numpy as np
from scipy import optimize
import tensorflow as tf

from cmt.model.loss import hungarian


def _seconds(function, repeats: int) -> tuple[float, float]:
  """(median, minimum) wall time of one call."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return statistics.median(times), min(times)


def _parse_shape(text: str) -> tuple[int, int, int]:
  parts = tuple(int(p) for p in text.split(','))
  if len(parts) != 3 or parts[1] > parts[2]:
    raise argparse.ArgumentTypeError(
        f'--shapes: expected B,R,C with R <= C, got {text!r}')
  return parts


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=200)
  parser.add_argument('--shapes', type=_parse_shape, nargs='+',
                      default=[(1, 100, 128), (8, 100, 128)])
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)

  solve = tf.function(hungarian.hungarian_match, jit_compile=True)
  trivial = tf.function(lambda cost: tf.cast(cost > 0.5, tf.int32),
                        jit_compile=True)
  rng = np.random.default_rng(args.seed)
  print(f'{"shape":>14} {"":>7} {"TF (ms)":>9} {"scipy (ms)":>11} '
        f'{"ratio":>6} {"call overhead (ms)":>19}')
  for shape in args.shapes:
    cost_np = rng.random(shape).astype(np.float32)
    cost = tf.constant(cost_np)
    assignment = solve(cost).numpy()  # Compiles.
    trivial(cost).numpy()
    total = (assignment * cost_np).sum()
    expected = sum(cost_np[b][optimize.linear_sum_assignment(cost_np[b])].sum()
                   for b in range(shape[0]))
    if not np.isclose(total, expected, rtol=1e-5):
      raise SystemExit(f'wrong assignment for {shape}: cost {total} against '
                       f'scipy {expected}')
    tf_times = _seconds(lambda: solve(cost).numpy(), args.repeats)
    overheads = _seconds(lambda: trivial(cost).numpy(), args.repeats)
    scipy_times = _seconds(
        lambda: [optimize.linear_sum_assignment(c) for c in cost_np],
        args.repeats)
    for name, tf_s, scipy_s, overhead in zip(('median', 'fastest'), tf_times,
                                             scipy_times, overheads):
      print(f'{str(list(shape)):>14} {name:>7} {tf_s * 1e3:9.3f} '
            f'{scipy_s * 1e3:11.3f} {tf_s / scipy_s:6.2f} '
            f'{overhead * 1e3:19.3f}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())

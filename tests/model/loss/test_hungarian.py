"""hungarian_match against scipy's linear_sum_assignment, compiled with XLA."""

import numpy as np
import pytest
from scipy import optimize
import tensorflow as tf

from cmt.model.loss import hungarian

_solve_compiled = tf.function(hungarian.hungarian_match, jit_compile=True)


def _check_against_scipy(cost: np.ndarray, assignment: np.ndarray):
  """Valid assignment whose total cost equals scipy's, per batch element."""
  batch, rows, cols = cost.shape
  assert assignment.shape == (batch, rows, cols)
  assert set(np.unique(assignment)) <= {0, 1}
  np.testing.assert_array_equal(assignment.sum(axis=2), 1)
  assert (assignment.sum(axis=1) <= 1).all()
  totals = (assignment * cost.astype(np.float64)).sum(axis=(1, 2))
  expected = np.array([c[optimize.linear_sum_assignment(c)].sum()
                       for c in cost.astype(np.float64)])
  scale = np.abs(cost).max() * rows
  np.testing.assert_allclose(totals, expected, rtol=0, atol=1e-6 * scale)


# (batch, R, C, kind): 3,520 matrices in all; ties come from the small
# integer ranges and the constant / two-valued matrices.
_CASES = [
    (1024, 4, 6, 'uniform'),
    (512, 9, 9, 'integer0-2'),
    (512, 12, 20, 'integer0-9'),
    (512, 16, 16, 'normal'),
    (256, 40, 64, 'uniform'),
    (256, 33, 33, 'integer0-3'),
    (128, 64, 100, 'two-valued'),
    (64, 100, 128, 'uniform'),
    (48, 128, 128, 'integer0-100'),
    (16, 128, 128, 'uniform'),
    (4, 128, 128, 'constant'),
]


def _costs(rng, batch, rows, cols, kind):
  shape = (batch, rows, cols)
  if kind == 'uniform':
    return rng.random(shape)
  if kind == 'normal':
    return rng.normal(size=shape) * 100.0  # Negative costs too.
  if kind.startswith('integer'):
    low, high = (int(v) for v in kind[len('integer'):].split('-'))
    return rng.integers(low, high + 1, shape).astype(np.float64)
  if kind == 'two-valued':
    return np.where(rng.random(shape) < 0.5, -1.0, 0.0)
  if kind == 'constant':
    return np.full(shape, 2.5)
  raise ValueError(kind)


@pytest.mark.parametrize('batch,rows,cols,kind', _CASES)
def test_total_cost_equals_scipy_under_xla(batch, rows, cols, kind):
  rng = np.random.default_rng(rows * 1000 + cols)
  cost = _costs(rng, batch, rows, cols, kind).astype(np.float32)
  assignment = _solve_compiled(tf.constant(cost)).numpy()
  _check_against_scipy(cost, assignment)


def test_known_assignment():
  cost = np.array([[[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]],
                  np.float32)
  # scipy's documentation example: rows -> columns 1, 0, 2 (total 5).
  assignment = _solve_compiled(cost).numpy()
  np.testing.assert_array_equal(assignment[0].argmax(axis=1), [1, 0, 2])
  assert assignment.dtype == np.int32


def test_matches_scipy_without_xla():
  rng = np.random.default_rng(7)
  cost = rng.random((8, 10, 13)).astype(np.float32)
  _check_against_scipy(cost, hungarian.hungarian_match(cost).numpy())
  graph = tf.function(hungarian.hungarian_match)
  _check_against_scipy(cost, graph(cost).numpy())


def test_single_and_empty_rows():
  np.testing.assert_array_equal(
      _solve_compiled(np.array([[[3.0]]], np.float32)).numpy(), [[[1]]])
  np.testing.assert_array_equal(
      _solve_compiled(np.array([[[3.0, -1.0, 2.0]]], np.float32)).numpy(),
      [[[0, 1, 0]]])
  assert hungarian.hungarian_match(np.zeros((2, 0, 4), np.float32)).shape == (
      2, 0, 4)


def test_bad_shapes_are_rejected():
  with pytest.raises(ValueError, match='R <= C'):
    hungarian.hungarian_match(np.zeros((1, 5, 4), np.float32))
  with pytest.raises(ValueError, match=r'\[B, R, C\]'):
    hungarian.hungarian_match(np.zeros((5, 4), np.float32))


def test_non_finite_costs_do_not_hang():
  cost = np.random.default_rng(3).random((2, 6, 8)).astype(np.float32)
  cost[0, 2, :] = np.nan
  cost[1, :, 3] = np.inf
  assignment = _solve_compiled(cost).numpy()
  assert assignment.shape == (2, 6, 8)
  assert (assignment.sum(axis=1) <= 1).all()

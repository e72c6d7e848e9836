"""Batched Hungarian matching in TensorFlow ops, for XLA and TPU.

`hungarian_match` solves the rectangular linear sum assignment problem

    min_X  sum_ij cost_ij X_ij   s.t.  sum_j X_ij = 1,  sum_i X_ij <= 1,

for a batch of [R, C] cost matrices with R <= C, by the shortest augmenting
path method (Jonker & Volgenant 1987; Crouse 2016, the algorithm behind
`scipy.optimize.linear_sum_assignment`). A few rounds of parallel
zero-epsilon bidding (JV's augmenting row reduction, all free rows at once)
first assign most rows cheaply with feasible dual potentials u, v. Then each
row still free is added in turn: a Dijkstra search over reduced costs
`cost - u - v` finds the cheapest alternating path to a free column, u and
v are updated to keep reduced costs non-negative (zero on the matching, v = 0
on free columns), and the path is flipped. The result is an optimal
assignment, as scipy's; among equal-cost optima it may pick another.

Everything is vectorised over the batch and over columns; the loops
(bidding rounds, rows, Dijkstra steps, path flip) are `tf.while_loop`s with
static shapes, so the function compiles with `tf.function(jit_compile=True)`.
A batch element whose search has finished idles (its state is frozen with
`tf.where`) until the slowest element of the batch is done.
"""

import tensorflow as tf

# Parallel bidding rounds before the augmenting paths (see _bidding_rounds).
_MAX_BIDDING_ROUNDS = 3


def _first_true(mask: tf.Tensor, axis: int = -1) -> tf.Tensor:
  """Index of the first True along `axis`; the last index where none is.

  (Callers mask out the all-False case themselves; clamping keeps gathers
  in range outside XLA too.) A min-reduction of indices: XLA on CPU runs it
  much faster than argmax.
  """
  size = mask.shape[axis]
  shape = [1] * mask.shape.rank
  shape[axis] = size
  index = tf.reshape(tf.range(size, dtype=tf.int32), shape)
  return tf.reduce_min(tf.where(mask, index, size - 1), axis=axis)


def _one_hot_bool(index: tf.Tensor, depth: int) -> tf.Tensor:
  return tf.one_hot(index, depth, on_value=True, off_value=False,
                    dtype=tf.bool)


def hungarian_match(cost: tf.Tensor) -> tf.Tensor:
  """Minimum-cost assignment of every row to a distinct column.

  Args:
    cost: float [B, R, C] with static R <= C; finite values (with NaN or
      inf the loops still end, bounded by R and C, but the result is
      arbitrary and may leave rows unassigned). Rows that must not influence
      the result (e.g. padded ground truth) should get a constant cost row.

  Returns:
    int32 [B, R, C]: exactly one 1 per row and at most one per column,
    minimising the total cost of each batch element.

  Raises:
    ValueError: on a cost that is not rank 3, has unknown R or C, or R > C.
  """
  cost = tf.convert_to_tensor(cost)
  if cost.shape.rank != 3:
    raise ValueError(f'hungarian_match: cost must be [B, R, C], got shape '
                     f'{cost.shape}')
  num_rows, num_cols = cost.shape[1], cost.shape[2]
  if num_rows is None or num_cols is None:
    raise ValueError(f'hungarian_match: R and C must be static, got shape '
                     f'{cost.shape}')
  if num_rows > num_cols:
    raise ValueError(f'hungarian_match: needs R <= C (rows are assigned to '
                     f'distinct columns), got R={num_rows} > C={num_cols}; '
                     'pass the transposed cost')
  cost = tf.cast(cost, tf.float32)
  batch_size = cost.shape[0] if cost.shape[0] is not None else tf.shape(cost)[0]
  if num_rows == 0:
    return tf.zeros_like(cost, dtype=tf.int32)
  col4row = _solve(cost, batch_size, num_rows, num_cols)
  return tf.one_hot(col4row, num_cols, dtype=tf.int32)


def _solve(cost, batch_size, num_rows, num_cols):
  """Returns col4row [B, R] int32: the column assigned to each row."""
  u, v, row4col, col4row = _bidding_rounds(cost, batch_size, num_rows,
                                           num_cols)
  _, _, _, col4row = tf.while_loop(
      lambda u, v, row4col, col4row: tf.reduce_any(col4row < 0),
      lambda u, v, row4col, col4row: _add_row(cost, u, v, row4col, col4row),
      (u, v, row4col, col4row), maximum_iterations=num_rows)
  return col4row


def _add_row(cost, u, v, row4col, col4row):
  """Assigns the first unassigned row of every batch element: the shortest
  augmenting path, the dual update, the path flip."""
  num_rows = cost.shape[1]
  unassigned = col4row < 0
  searching = tf.reduce_any(unassigned, axis=-1)
  cur_row = _first_true(unassigned)
  sink, min_val, shortest, path, sc = _shortest_path(
      cost, cur_row, searching, u, v, row4col)
  # Dual update keeps cost - u - v >= 0, with equality on the new matching.
  is_cur = _one_hot_bool(cur_row, num_rows) & searching[:, tf.newaxis]
  own_col = tf.maximum(col4row, 0)
  scanned_row = (col4row >= 0) & tf.gather(sc, own_col, batch_dims=1)
  min_val_c = min_val[:, tf.newaxis]
  u += tf.where(is_cur, min_val_c,
                tf.where(scanned_row,
                         min_val_c - tf.gather(shortest, own_col,
                                               batch_dims=1), 0.0))
  v -= tf.where(sc, min_val_c - shortest, 0.0)
  row4col, col4row = _augment(cur_row, searching, sink, path, row4col,
                              col4row)
  return u, v, row4col, col4row


def _shortest_path(cost, cur_row, searching, u, v, row4col):
  """Dijkstra from `cur_row` [B] over reduced costs to a free column.

  Batch elements with `searching` False do nothing. Returns (sink [B],
  min_val [B], shortest [B, C], path [B, C], scanned columns [B, C]).
  The rows scanned are `cur_row` and the owners of the scanned columns.
  """
  inf = tf.constant(float('inf'), tf.float32)
  num_cols = cost.shape[2]
  col_ids = tf.range(num_cols, dtype=tf.int32)[tf.newaxis]  # [1, C]
  # Ties for the closest column go to a free one, which ends the search
  # sooner (this matters for integer costs), then to the lowest index:
  # one min-reduction over col + C * (column taken).
  tie_key = col_ids + tf.where(row4col < 0, 0, num_cols)

  def not_done(i, min_val, sink, shortest, path, sc):
    del i, min_val, shortest, path, sc
    return tf.reduce_any(sink < 0)

  def step(i, min_val, sink, shortest, path, sc):
    active = sink < 0
    # Tentative distance to every column through row i. Once an element
    # has found its sink this only touches unscanned columns, which the
    # dual update and the path flip never read.
    reduced = (min_val[:, tf.newaxis] + tf.gather(cost, i, batch_dims=1)
               - tf.gather(u, i, batch_dims=1)[:, tf.newaxis] - v)
    improve = (~sc) & (reduced < shortest)
    shortest = tf.where(improve, reduced, shortest)
    path = tf.where(improve, i[:, tf.newaxis], path)
    unscanned = tf.where(sc, inf, shortest)
    lowest = tf.reduce_min(unscanned, axis=-1)
    key = tf.reduce_min(
        tf.where((unscanned == lowest[:, tf.newaxis]) & ~sc, tie_key,
                 2 * num_cols), axis=-1)
    is_free = key < num_cols
    j = tf.minimum(key % num_cols, num_cols - 1)
    min_val = tf.where(active, lowest, min_val)
    sink = tf.where(active & is_free, j, sink)
    i = tf.where(is_free, i, tf.gather(row4col, j, batch_dims=1))
    sc = sc | ((col_ids == j[:, tf.newaxis]) & active[:, tf.newaxis])
    return i, min_val, sink, shortest, path, sc

  batch_size = tf.shape(u)[0] if u.shape[0] is None else u.shape[0]
  init = (
      cur_row,
      tf.zeros([batch_size], tf.float32),
      tf.where(searching, -1, 0),
      tf.fill([batch_size, num_cols], inf),
      tf.fill([batch_size, num_cols], -1),
      tf.zeros([batch_size, num_cols], tf.bool),
  )
  # Every step scans a new column; the bound only matters for NaN costs.
  _, min_val, sink, shortest, path, sc = tf.while_loop(
      not_done, step, init, maximum_iterations=num_cols)
  return sink, min_val, shortest, path, sc


def _augment(cur_row, searching, sink, path, row4col, col4row):
  """Flips the alternating path ending at `sink` back to `cur_row`."""
  num_rows, num_cols = col4row.shape[1], row4col.shape[1]

  def not_done(j, done, row4col, col4row):
    del j, row4col, col4row
    return ~tf.reduce_all(done)

  def step(j, done, row4col, col4row):
    active = ~done
    # Finished elements idle; clamping keeps their lookups in range.
    i = tf.maximum(tf.gather(path, tf.maximum(j, 0), batch_dims=1), 0)
    row4col = tf.where(_one_hot_bool(j, num_cols) & active[:, tf.newaxis],
                       i[:, tf.newaxis], row4col)
    previous_col = tf.gather(col4row, i, batch_dims=1)
    col4row = tf.where(_one_hot_bool(i, num_rows) & active[:, tf.newaxis],
                       j[:, tf.newaxis], col4row)
    j = tf.where(active, previous_col, j)
    done = done | (i == cur_row)
    return j, done, row4col, col4row

  _, _, row4col, col4row = tf.while_loop(
      not_done, step, (sink, ~searching, row4col, col4row),
      maximum_iterations=num_rows)
  return row4col, col4row


def _bidding_rounds(cost, batch_size, num_rows, num_cols,
                    max_rounds=_MAX_BIDDING_ROUNDS):
  """Initial duals and partial matching by parallel zero-epsilon bidding.

  Jonker-Volgenant's augmenting row reduction done for all free rows at
  once (a Jacobi auction round with epsilon 0): every free row i bids for
  its cheapest column j1 under the current v, offering the gap between its
  best and second-best reduced value; each column goes to its highest
  bidder, whose u becomes the second-best value while v_j1 drops by the
  bid, and the column's previous owner becomes free. Reduced costs stay
  non-negative and are zero on every assigned pair; v only drops on columns
  that stay assigned, so free columns keep v = 0 as optimality for R < C
  requires. Zero-epsilon bidding can cycle, so it stops after a few rounds
  or when a round frees as many rows as it assigns; the shortest augmenting
  paths finish the job.

  Returns (u [B, R], v [B, C], row4col [B, C], col4row [B, R]).
  """
  u = tf.reduce_min(cost, axis=-1)  # Feasible for every row while v = 0.
  v = tf.zeros([batch_size, num_cols], tf.float32)
  row4col = tf.fill([batch_size, num_cols], -1)
  col4row = tf.fill([batch_size, num_rows], -1)
  if num_cols < 2:  # No second-best column to bid against.
    return u, v, row4col, col4row

  def bid(round_index, num_free, u, v, row4col, col4row):
    del num_free
    free = col4row < 0
    u, v, row4col, col4row = _bidding_round(cost, batch_size, u, v, row4col,
                                            col4row)
    return (round_index + 1, tf.reduce_sum(tf.cast(free, tf.int32)), u, v,
            row4col, col4row)

  def keep_bidding(round_index, num_free, u, v, row4col, col4row):
    del u, v, row4col
    still_free = tf.reduce_sum(tf.cast(col4row < 0, tf.int32))
    return ((round_index < max_rounds) & (still_free > 0)
            & (still_free < num_free))

  _, _, u, v, row4col, col4row = tf.while_loop(
      keep_bidding, bid,
      (tf.constant(0), tf.constant(2**30), u, v, row4col, col4row))
  return u, v, row4col, col4row


def _bidding_round(cost, batch_size, u, v, row4col, col4row):
  """One round: every free row bids for its cheapest column, each column
  goes to its highest bidder, outbid owners become free."""
  inf = tf.constant(float('inf'), tf.float32)
  num_rows, num_cols = cost.shape[1], cost.shape[2]
  row_ids = tf.range(num_rows, dtype=tf.int32)[tf.newaxis]  # [1, R]
  col_ids = tf.range(num_cols, dtype=tf.int32)[tf.newaxis]  # [1, C]
  rotated_col = (col_ids - tf.transpose(row_ids)) % num_cols  # [R, C]
  # Column j of batch element b is segment b * C + j of the bids.
  segment_base = (tf.range(batch_size, dtype=tf.int32) * num_cols)[:, None]

  def per_column(values, reduce, segment):
    """Reduces [B, R] row values onto their columns -> [B, C]."""
    return tf.reshape(reduce(values, segment, batch_size * num_cols),
                      [batch_size, num_cols])

  free = col4row < 0
  reduced = cost - v[:, tf.newaxis, :]
  best = tf.reduce_min(reduced, axis=-1)
  # Among tied best columns row i takes the first at or after column i
  # (cyclically), so rows with equal costs (e.g. padded ground truth) bid
  # for different columns instead of all for the first one.
  rotated = tf.reduce_min(
      tf.where(reduced == best[..., tf.newaxis], rotated_col, num_cols),
      axis=-1)
  best_col = (rotated + row_ids) % num_cols
  second = tf.reduce_min(
      tf.where(col_ids == best_col[..., tf.newaxis], inf, reduced), axis=-1)
  # Each column goes to its highest bidder, the lowest row among equals.
  offer = tf.where(free, second - best, -1.0)
  segment = best_col + segment_base
  top_offer = per_column(offer, tf.math.unsorted_segment_max, segment)
  has_bid = top_offer >= 0.0
  is_top = free & (offer == tf.gather(top_offer, best_col, batch_dims=1))
  winner = per_column(tf.where(is_top, row_ids, num_rows),
                      tf.math.unsorted_segment_min, segment)
  won = is_top & (tf.gather(winner, best_col, batch_dims=1) == row_ids)
  displaced = (col4row >= 0) & tf.gather(
      has_bid, tf.maximum(col4row, 0), batch_dims=1)
  col4row = tf.where(won, best_col, tf.where(displaced, -1, col4row))
  u = tf.where(won, second, u)
  v -= tf.where(has_bid, top_offer, 0.0)
  row4col = tf.where(has_bid, winner, row4col)
  return u, v, row4col, col4row

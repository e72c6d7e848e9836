"""Numpy references of the loss formulas, written for clarity (loops).

Inputs are at the prediction's resolution, one image at a time:
mask_id [P] (-1 unlabelled), mask_class [K], valid [K] (real and present),
mask logits [P, N], class logits [N, C + 1].
"""

import numpy as np
from scipy import optimize


def softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def match(mask_id, mask_class, valid, mask_logits, class_logits):
  """{mask k: slot n} for valid masks, by scipy on -(dice x class prob)."""
  probs = softmax(mask_logits) * (mask_id >= 0)[:, None]
  class_probs = softmax(class_logits)
  ks = [k for k in range(len(mask_class)) if valid[k]]
  cost = np.zeros((len(ks), mask_logits.shape[1]))
  dice = np.zeros_like(cost)
  prob = np.zeros_like(cost)
  for row, k in enumerate(ks):
    gt = (mask_id == k).astype(float)
    for n in range(mask_logits.shape[1]):
      dice[row, n] = (gt * probs[:, n]).sum() / (
          (gt.sum() + probs[:, n].sum()) / 2 + 1e-5)
      prob[row, n] = class_probs[n, mask_class[k]]
  cost = -dice * prob
  rows, cols = optimize.linear_sum_assignment(cost)
  return ({ks[r]: c for r, c in zip(rows, cols)},
          {ks[r]: dice[r, c] for r, c in zip(rows, cols)},
          {ks[r]: prob[r, c] for r, c in zip(rows, cols)})


def void_ratio(mask_id, mask_logits):
  """[N] share of each slot's mask probability on unlabelled pixels."""
  probs = softmax(mask_logits)
  return (probs * (mask_id < 0)[:, None]).sum(0) / (probs.sum(0) + 1e-5)


def nonzero_mean(terms):
  """DeepLab2's average: sum / number of non-zero terms (0 if none)."""
  terms = np.asarray(terms, np.float64)
  count = np.count_nonzero(terms)
  return terms.sum() / count if count else 0.0


def cross_entropy(logits, target):
  return -np.log(softmax(logits)[target])


def pq_style(assign, dice, prob, mask_id, mask_class, mask_logits,
             class_logits, alpha, void_ratio=None):
  """void_ratio [N]: weights of the unmatched slots (default 1)."""
  num_slots = mask_logits.shape[1]
  class_terms = []
  slot_to_mask = {n: k for k, n in assign.items()}
  for n in range(num_slots):
    if n in slot_to_mask:
      k = slot_to_mask[n]
      class_terms.append(alpha * max(dice[k], 1e-5) * cross_entropy(
          class_logits[n], mask_class[k]))
    else:
      weight = 1.0 if void_ratio is None else max(void_ratio[n], 1e-5)
      class_terms.append((1 - alpha) * weight *
                         cross_entropy(class_logits[n], 0))
  probs = softmax(mask_logits) * (mask_id >= 0)[:, None]
  mask_term = 0.0
  for k, n in assign.items():
    gt = (mask_id == k).astype(float)
    dice_loss = 1 - (2 * (gt * probs[:, n]).sum() + 1) / (
        probs[:, n].sum() + gt.sum() + 1)
    mask_term += max(prob[k], 1e-5) * dice_loss
  return nonzero_mean(class_terms) + alpha / num_slots * mask_term


def mask_id_cross_entropy(assign, mask_id, mask_logits):
  losses = [cross_entropy(mask_logits[p], assign[k])
            for p, k in enumerate(mask_id) if k >= 0 and k in assign]
  return nonzero_mean(losses)


def semantic(labels, logits):
  losses = [cross_entropy(logits[p], c) for p, c in enumerate(labels) if c]
  return nonzero_mean(losses)


def mask_approximation(assign, mask_id, height, width, points):
  """Eq. 13 with align-corners coordinates y / (h - 1), x / (w - 1)."""
  ys, xs = np.divmod(np.arange(height * width), width)
  ys = ys / max(height - 1, 1)
  xs = xs / max(width - 1, 1)
  total = 0.0
  for k, n in assign.items():
    on = mask_id == k
    gy, gx = ys[on], xs[on]
    ry, rx = points[n, :, 0], points[n, :, 1]
    ext = (abs(ry.min() - gy.min()) + abs(ry.max() - gy.max())
           + abs(rx.min() - gx.min()) + abs(rx.max() - gx.max()))
    cen = abs(ry.mean() - gy.mean()) + abs(rx.mean() - gx.mean())
    total += ext / 4 + cen / 2
  return total / len(assign) if assign else 0.0


def mask_center(features, mask_id, valid, is_thing, temperature):
  centers = {}
  for k in range(len(valid)):
    if valid[k]:
      c = features[mask_id == k].mean(axis=0)
      centers[k] = c / np.linalg.norm(c)
  ks = sorted(centers)
  losses = []
  for p, k in enumerate(mask_id):
    if k >= 0 and is_thing[k]:
      logits = np.array([features[p] @ centers[j] for j in ks]) / temperature
      losses.append(-np.log(softmax(logits)[ks.index(k)]))
  return nonzero_mean(losses)


def pixel_contrastive(features, mask_id, temperature):
  """Eq. 14 over all labelled pixels (A = every labelled pixel)."""
  on = np.flatnonzero(mask_id >= 0)
  f = features[on] / np.linalg.norm(features[on], axis=-1, keepdims=True)
  ids = mask_id[on]
  losses = []
  for a in range(len(on)):
    log_probs = np.log(softmax(f[a] @ f.T / temperature))
    positives = np.flatnonzero(ids == ids[a])
    losses.append(-log_probs[positives].mean())
  return nonzero_mean(losses)

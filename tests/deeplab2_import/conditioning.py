"""Tolerances from each tensor's own float32 conditioning, for comparisons
with DeepLab2 (tests/deeplab2_import) and of two computations of the same
gradients (tests/model/recompute_check.py).

The fixtures' weights are random, and a deep random network amplifies
round-off: our model and DeepLab2's sum in other orders (and with another
number of threads, in another order again), so a deep tensor of ours differs
from DeepLab2's by about what 1-2 ulp of noise on the input makes it move.
A fixed tolerance on such a tensor passes or fails with the CPU's rounding.
So each test measures that conditioning on our model: it runs the input and
the input with 1-2 ulp of noise (as one batch of two: one model call), and
judges |ours - DeepLab2| against

  MULTIPLE * (largest change the noise made to that tensor)
  + FLOOR * (largest |value| of DeepLab2's tensor).

The floor, a few float32 ulp of the tensor's scale, is what remains for a
shallow, well-conditioned tensor, which the noise hardly moves: there it is
the fixed tolerance.
"""

from typing import Dict, Mapping

import numpy as np

# Measured with 1 and 2 intra-op threads over 3 noise draws: our tensors
# differed from DeepLab2's by 0.24-0.75x what the noise moved them (MaX-S
# outputs) and 0.59-1.55x (Axial-R50 res2-res5); 4x leaves room for the
# spread of one draw. A 1.0001 scaling of one backbone kernel exceeds it 6x.
MULTIPLE = 4.0
# 16 float32 ulp of the tensor's largest magnitude (1 ulp <= 2^-23 of it).
FLOOR = 16 * 2.0**-23
NOISE_SEED = 1


def with_ulp_noise(x: np.ndarray, seed: int = NOISE_SEED) -> np.ndarray:
  """`x` (float32) with every element moved 1 or 2 ulp up or down."""
  x = np.asarray(x, np.float32)
  steps = np.random.default_rng(seed).choice(
      np.array([-2, -1, 1, 2], np.float32), size=x.shape)
  return (x + steps * np.spacing(np.abs(x))).astype(np.float32)


def with_noisy_copy(image: np.ndarray) -> np.ndarray:
  """The batch [image, image with ulp noise] (image: [1, ...]): one model
  call gives the outputs and their sensitivity (`split_noisy`)."""
  return np.concatenate([image, with_ulp_noise(image)], axis=0)


def split_noisy(outputs: Mapping[str, np.ndarray]):
  """Outputs of a `with_noisy_copy` batch -> (outputs on the image, each
  [1, ...]; sensitivity: name -> largest change the noise made)."""
  clean = {name: np.asarray(value)[:1] for name, value in outputs.items()}
  sensitivity = {
      name: float(np.abs(np.asarray(value)[1:] - clean[name]).max())
      for name, value in outputs.items()}
  return clean, sensitivity


def pair_segments(ours: np.ndarray, theirs: np.ndarray):
  """Pairs the segment ids of two panoptic maps one to one, largest overlap
  first. Returns (pairs [(ours id, theirs id)], pixels outside the pairs:
  0 when the maps are equal up to a renumbering)."""
  overlaps, counts = np.unique(
      np.stack([ours.ravel(), theirs.ravel()]), axis=1, return_counts=True)
  pairs, agreeing = [], 0
  for index in np.argsort(-counts, kind='stable'):
    a, b = int(overlaps[0, index]), int(overlaps[1, index])
    if all(a != x and b != y for x, y in pairs):
      pairs.append((a, b))
      agreeing += int(counts[index])
  return pairs, ours.size - agreeing


def tolerance(sensitivity: float, theirs: np.ndarray) -> float:
  return MULTIPLE * sensitivity + FLOOR * float(np.abs(theirs).max())


def mismatches(ours: Mapping[str, np.ndarray],
               theirs: Mapping[str, np.ndarray],
               sensitivity: Mapping[str, float]) -> Dict[str, str]:
  """{name: why} for every tensor of `theirs` that `ours` does not match
  within its tolerance (empty when all match)."""
  failures = {}
  for name, reference in theirs.items():
    value = np.asarray(ours[name])
    if value.shape != reference.shape:
      failures[name] = f'shape {value.shape} != {reference.shape}'
      continue
    difference = float(np.abs(value - reference).max())
    limit = tolerance(sensitivity[name], reference)
    if not difference <= limit:
      failures[name] = (f'max difference {difference:.3g} > {limit:.3g} '
                        f'(noise moved it {sensitivity[name]:.3g})')
  return failures


def assert_match(ours, theirs, sensitivity, message: str = ''):
  failures = mismatches(ours, theirs, sensitivity)
  assert not failures, f'{message}: {failures}'

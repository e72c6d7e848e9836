"""A measurable Fig. 1: how densely a center's cross-attention covers its
object.

For a ground-truth thing segment M (pixels of the image) of a held-out
image, take the cluster center n that segments it: the center whose
predicted mask (argmax over centers of the final mask logits, Eq. 4; as
`cmt-visualize` draws it) has the highest IoU with M. Its last-layer
cross-attention A_n (`CROSS_ATTENTION` of the figures' path: the
center-to-pixel attention averaged over heads, plus Z^T with the clustering
update, Eq. 7) is brought to image resolution (bilinear, aligned corners),
cut to the image and normalised to sum 1 over its pixels. Then

    density(M) = |{p in M : A_n(p) >= 1 / |M|}| / |M|

the fraction of the object that receives at least its uniform share of the
center's attention: 1 when the attention is spread evenly over the object
(or more), close to 0 when it sits on a few spots (MaX-DeepLab in Fig. 1).
Beside it `mass(M) = sum over p in M of A_n(p)`, the share of the attention
that lands on the object at all, and `spread = exp(H(A_n)) / hw`, the
entropy of the attention on its own h x w grid as the fraction of the grid
it effectively covers (1 / hw: one spot; 1: uniform). Every segment of
every image counts, things and stuff apart (the same segments for every
model).

Resolution: the last layer attends at stride 16 (a 9 x 9 grid at crop 129),
so bilinear upsampling spreads even a perfectly placed attention over about
a 16-pixel border; for a small thing (50-530 pixels) that caps the density
well below 1. Stuff segments are large enough not to be capped. Compare
rows with each other, not with 1.
"""

from typing import Iterator, Sequence

import numpy as np

from cmt import visualize


def attention_distribution(attention: np.ndarray, size: Sequence[int]
                           ) -> np.ndarray:
  """One center's attention [h, w] -> [H, W] (image size) summing to 1."""
  upsampled = np.maximum(visualize.bilinear_upsample(attention, size), 0)
  return upsampled / max(float(upsampled.sum()), 1e-12)


def segment_density(distribution: np.ndarray, mask: np.ndarray
                    ) -> tuple[float, float]:
  """(density, mass) of one attention distribution [H, W] on `mask`."""
  area = int(mask.sum())
  inside = distribution[mask]
  return (float(np.sum(inside >= 1.0 / area)) / area, float(inside.sum()))


def best_iou_centers(assignment: np.ndarray, masks: np.ndarray
                     ) -> np.ndarray:
  """assignment [H, W] center per pixel, masks [K, H, W] -> [K] center with
  the highest IoU with each mask."""
  num_centers = int(assignment.max()) + 1
  one_hot = assignment[None] == np.arange(num_centers)[:, None, None]
  masks = masks.astype(bool)
  inter = np.einsum('khw,nhw->kn', masks, one_hot, dtype=np.int64)
  union = (masks.sum((1, 2))[:, None] + one_hot.sum((1, 2))[None] - inter)
  return np.argmax(inter / np.maximum(union, 1), axis=1)


def spread(attention: np.ndarray) -> float:
  """exp(entropy) / size of one attention map [h, w] on its own grid."""
  weights = np.maximum(attention, 0).ravel()
  weights = weights / max(float(weights.sum()), 1e-12)
  entropy = -float(np.sum(weights * np.log(np.maximum(weights, 1e-30))))
  return float(np.exp(entropy)) / weights.size


def image_densities(mask_logits: np.ndarray, attention: np.ndarray,
                    ids: np.ndarray, segment_ids: Sequence[int]
                    ) -> list[tuple[float, float, float]]:
  """(density, mass, spread) of each of `segment_ids` in one image.

  mask_logits [h4, w4, N] (final output), attention [N, h, w], ids [H, W]
  ground-truth segment ids.
  """
  if not len(segment_ids):
    return []
  size = ids.shape
  assignment = visualize.clustering_map(mask_logits, size, size)
  masks = np.stack([ids == i for i in segment_ids])
  centers = best_iou_centers(assignment, masks)
  return [segment_density(attention_distribution(attention[n], size), m) +
          (spread(attention[n]),) for n, m in zip(centers, masks)]


def summarize(values: Sequence[float]) -> dict:
  values = np.asarray(values, np.float64)
  return {'mean': float(values.mean()) if values.size else float('nan'),
          'std': float(values.std()) if values.size else float('nan'),
          'count': int(values.size)}


KINDS = ('things', 'stuff')
STATISTICS = ('density', 'mass', 'spread')


def measure(inference, examples: Iterator) -> dict:
  """{'things' | 'stuff': {'density' | 'mass' | 'spread': [per segment]}}
  over `examples` (image uint8 [H, W, 3] at the eval crop, ids [H, W],
  {kind: segment ids}) under the model of `inference`
  (`cmt.export.PanopticInference`)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cmt import common  # pylint: disable=g-import-not-at-top
  forward = tf.function(
      lambda image: inference.model_outputs(inference.preprocess(image)[0]))
  measured = {kind: {name: [] for name in STATISTICS} for kind in KINDS}
  for image, ids, segments in examples:
    outputs = forward(tf.constant(image, tf.uint8))
    logits = outputs[common.MASK_LOGITS][0].numpy()
    attention = outputs[common.CROSS_ATTENTION][0].numpy()
    for kind in KINDS:
      for values in image_densities(logits, attention, ids, segments[kind]):
        for name, value in zip(STATISTICS, values):
          measured[kind][name].append(value)
  return measured

"""The CMT-DeepLab / MaX-DeepLab meta-architecture.

images [B, H, W, 3] in [0, 255] -> x / 127.5 - 1 -> stack of backbone +
transformer + decoder (`cmt.model.stack`; one, or two for the Recursive
Feature Network) -> heads -> dict keyed by `cmt.common`.

Recursive Feature Network (Sec. 3.4): the whole stack (backbone +
transformer layers + decoder) is built twice; the first stack's stride-4
features are added to the second stack's stride-4 backbone features (its
stage-2 output), and the two stacks' stride-4 features and cluster centers
are averaged before the (shared) heads.

With the clustering update, the assignment logits of the last transformer
layer join the final mask logits through the residual path of Eq. 6
(upsampled bilinearly to stride 4), since "the clustering results have the
same format as the segmentation output".
"""

from typing import Dict

import tensorflow as tf
import tf_keras

from cmt import common
from cmt.model import heads
from cmt.model import spec as spec_lib
from cmt.model import stack as stack_lib
from cmt.model.layers import attention_ops
from cmt.model.layers import dual_path_transformer
from cmt.model.layers import norm_act


class CMTDeepLab(tf_keras.Model):
  """The panoptic model; `call(images, training)` returns the output dict.

  CROSS_ATTENTION and CLUSTER_ASSIGNMENT (Fig. 1) are computed only with
  `figure_outputs=True` (the figures' path, `cmt-visualize`), never in a
  train or eval step.
  """

  def __init__(self, spec: spec_lib.ModelSpec, num_classes: int,
               name: str = 'cmt_deeplab'):
    super().__init__(name=name)
    self._spec = spec
    norm = norm_act.NormConfig.of(spec.norm)
    activation = spec.activation
    # The stacks; `encoders` and the 'encoder' names are checkpoint paths
    # (DeepLab2's).
    self.encoders = [stack_lib.Stack(spec, norm, name=f'encoder{i + 1}')
                     for i in range(spec.num_stacks)]
    head = spec.heads
    self.pixel_space_head = heads.PixelSpaceHead(
        head.pixel_space_head_channels, head.pixel_space_output_channels,
        norm, activation)
    self.center_heads = heads.CenterHeads(
        spec.memory_channels, head.pixel_space_output_channels, num_classes,
        head.class_void_prior, norm, activation)
    self.mask_logits = heads.MaskLogits(norm, head.mask_logits_bn_gamma)
    self.semantic_head = None
    if head.auxiliary_semantic_head:
      self.semantic_head = heads.AuxiliarySemanticHead(
          head.semantic_head_channels, head.res3_projection_channels,
          head.res2_projection_channels, num_classes, norm, activation,
          aspp_channels=head.aspp_channels, atrous_rates=head.atrous_rates,
          decoder_channels=head.semantic_decoder_channels)
    self._activation = norm_act.get_activation(activation)

  @property
  def stacks(self):
    """The stacks (one, or two with the Recursive Feature Network)."""
    return self.encoders

  def call(self, images, training=False,
           figure_outputs=False) -> Dict[str, tf.Tensor]:
    if images.shape.rank != 4 or images.shape[-1] != 3 or None in (
        images.shape[1:3]):
      raise ValueError('CMTDeepLab expects images [B, H, W, 3] with a static '
                       f'height and width; got {images.shape}')
    x = tf.cast(images, self.compute_dtype) / 127.5 - 1.0
    results = []
    feedback = None
    for stack in self.stacks:
      result = stack(x, training=training, stride4_feedback=feedback,
                     figure_outputs=figure_outputs)
      feedback = result.high_resolution
      results.append(result)
    high_resolution = tf.add_n([r.high_resolution for r in results]) / len(
        results)
    centers = tf.add_n([r.centers for r in results]) / len(results)

    pixel_features = self.pixel_space_head(self._activation(high_resolution),
                                           training=training)
    class_logits, mask_embedding = self.center_heads(centers,
                                                     training=training)
    mask_logits = self.mask_logits(pixel_features, mask_embedding,
                                   training=training)
    layers = [layer for r in results for layer in r.layers]
    last_logits = [r.layers[-1].assignment_logits for r in results]
    if last_logits[0] is not None:
      # Residual path between the clustering results and the final output.
      mask_logits += norm_act.resize_align_corners(
          self._to_map(tf.add_n(last_logits) / len(last_logits),
                       results[-1].layers[-1].pixels),
          mask_logits.shape[1:3])

    outputs = {
        common.MASK_LOGITS: mask_logits,
        common.CLASS_LOGITS: class_logits,
        common.PIXEL_FEATURES: pixel_features,
    }
    if figure_outputs:
      outputs[common.CROSS_ATTENTION] = self._to_map(
          layers[-1].cross_attention, layers[-1].pixels, transpose=True)
      if last_logits[-1] is not None:
        outputs[common.CLUSTER_ASSIGNMENT] = self._to_map(
            tf.transpose(attention_ops.assignment(last_logits[-1]), [0, 2, 1]),
            layers[-1].pixels, transpose=True)
    if self.semantic_head is not None:
      endpoints = results[-1].endpoints
      outputs[common.SEMANTIC_LOGITS] = self.semantic_head(
          endpoints['stage5'], endpoints['stage3'], endpoints['stage2'],
          training=training)
    if self._spec.reference_mask:
      embedding = tf.add_n([r.layers[-1].reference_embedding
                            for r in results]) / len(results)
      outputs[common.REFERENCE_POINTS] = (
          dual_path_transformer.reference_points(embedding))
    outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
    outputs[common.AUX_OUTPUTS] = self._layer_outputs(layers, training)
    return outputs

  def _layer_outputs(self, layers, training) -> tuple:
    """AUX_OUTPUTS: with the clustering update, the clustering result of
    every layer but the last (whose assignment feeds the final output) as
    mask logits, with its class logits and reference points."""
    if not self._spec.clustering_update:
      return ()
    aux = []
    for layer in layers[:-1]:
      entry = {
          common.MASK_LOGITS: self._to_map(layer.assignment_logits,
                                           layer.pixels),
          common.CLASS_LOGITS: self.center_heads.class_logits(
              layer.centers, training=training),
      }
      if layer.reference_embedding is not None:
        entry[common.REFERENCE_POINTS] = (
            dual_path_transformer.reference_points(layer.reference_embedding))
      aux.append({k: tf.cast(v, tf.float32) for k, v in entry.items()})
    return tuple(aux)

  @staticmethod
  def _to_map(values, reference, transpose=False):
    """[B, HW, N] (or [B, N, HW] with transpose) -> [B, H, W, N] ([B, N, H, W])
    at the resolution of `reference` (the layer's pixels, [B, H, W, C])."""
    height, width = reference.shape[1:3]
    if transpose:
      return tf.reshape(values, [-1, values.shape[1], height, width])
    return tf.reshape(values, [-1, height, width, values.shape[-1]])

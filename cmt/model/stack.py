"""One stack of MaX-DeepLab / CMT-DeepLab before the heads: the backbone,
the dual-path transformer layers with the cluster centers, and the decoder
to stride 4 or 8.

The Recursive Feature Network stacks two of these (`cmt.model.cmt_deeplab`).
The model keeps its stacks in the attribute `encoders` and each stack is
named 'encoder1', 'encoder2': those names are checkpoint paths (DeepLab2's),
so "stack" names the concept everywhere else.
"""

from typing import Dict, List, NamedTuple, Optional

import tensorflow as tf
import tf_keras

from cmt.model.backbone import builders as backbone_lib
from cmt.model import decoder
from cmt.model import spec as spec_lib
from cmt.model.layers import blocks
from cmt.model.layers import dual_path_transformer
from cmt.model.layers import norm_act


class StackOutput(NamedTuple):
  # [B, h, w, C] pre-activation, at high_resolution_output_stride (4 or 8).
  high_resolution: tf.Tensor
  centers: tf.Tensor  # [B, N, Cm] cluster centers after the last layer.
  endpoints: Dict[str, tf.Tensor]  # Backbone endpoints 'stage1'..'stage5'.
  layers: List[dual_path_transformer.DualPathOutput]  # In order.


def resize_assignment_logits(logits: tf.Tensor, size_from, size_to
                             ) -> tf.Tensor:
  """[B, h*w, N] assignment logits on a `size_from` grid -> `size_to` grid
  (bilinear, aligned corners); unchanged when the sizes agree."""
  if tuple(size_from) == tuple(size_to):
    return logits
  grid = tf.reshape(logits, [-1, *size_from, logits.shape[-1]])
  grid = norm_act.resize_align_corners(grid, size_to)
  return tf.reshape(grid, [-1, size_to[0] * size_to[1], logits.shape[-1]])


_Layer = dual_path_transformer.ClusteringMaskTransformerLayer


def _transformer_layer(dual_path: spec_lib.DualPathSpec,
                       layer: spec_lib.LayerSpec, norm: norm_act.NormConfig
                       ) -> _Layer:
  """One dual-path layer of the stack's shared widths and switches."""
  return _Layer(
      layer.name, norm, dual_path.activation, filters=dual_path.filters,
      num_heads=dual_path.num_heads,
      feed_forward_channels=dual_path.feed_forward_channels,
      clustering_update=dual_path.clustering_update,
      reference_mask=dual_path.reference_mask,
      coord_conv=dual_path.coord_conv,
      num_reference_points=dual_path.num_reference_points,
      drop_rate=layer.drop_rate, recompute=layer.recompute)


class Stack(tf_keras.layers.Layer):
  """Backbone + transformer stages + upsampling decoder of one stack, built
  from a `spec.ModelSpec`. The attribute names are part of the checkpoint
  paths (`cmt.deeplab2.names`).
  """

  def __init__(self, spec: spec_lib.ModelSpec, norm: norm_act.NormConfig,
               name: str = 'encoder'):
    super().__init__(name=name)
    self._spec = spec
    self.backbone = backbone_lib.build(spec.backbone, norm)
    self._backbone_layers = [_transformer_layer(spec.dual_path, layer, norm)
                             for layer in spec.backbone_layers]
    self._decoder_stages = [self._transformer_stage(stage, norm)
                            for stage in spec.transformer_stages]
    self.decoder = decoder.UpsamplingDecoder(spec.decoder, norm)
    if spec.reference_mask:
      # e of Eq. 9 before the first layer: projected from the initial centers.
      self._initial_embedding = tf_keras.layers.Dense(
          2 * spec.dual_path.num_reference_points,
          kernel_initializer=tf_keras.initializers.TruncatedNormal(
              stddev=0.01), name='reference_embedding')

  def _transformer_stage(self, stage: spec_lib.TransformerStageSpec, norm):
    """(backbone stage, fuse to the stage's width, [(axial block, layer)])
    of one decoder dual-path stage."""
    activation = self._spec.activation
    query_region = self._spec.backbone.axial_query_region
    fuse = decoder.ResizedFuse(stage.channels, f'{stage.prefix}_fuse', norm,
                               activation)
    pairs = [(blocks.ResidualBlock(
        block.filters, block.name, norm, activation, axial=True,
        drop_rate=block.drop_rate, query_region=query_region,
        num_heads=self._spec.backbone.axial_heads, recompute=block.recompute),
              _transformer_layer(self._spec.dual_path, layer, norm))
             for block, layer in stage.pairs]
    return (stage.backbone_stage, fuse, pairs)

  @property
  def transformer_layers(self):
    return self._backbone_layers + [
        layer for _, _, pairs in self._decoder_stages for _, layer in pairs]

  def build(self, input_shape):
    self.cluster_centers = self.add_weight(
        name='memory_feature',
        shape=(self._spec.num_cluster_centers, self._spec.memory_channels),
        initializer=tf_keras.initializers.TruncatedNormal(stddev=1.0))

  def call(self, images, training=False,
           stride4_feedback: Optional[tf.Tensor] = None,
           figure_outputs: bool = False
           ) -> StackOutput:
    """`figure_outputs`: the transformer layers also return what only the
    figures use (`DualPathOutput.cross_attention`)."""
    centers = tf.tile(tf.cast(self.cluster_centers, images.dtype)[None],
                      [tf.shape(images)[0], 1, 1])
    state = {'centers': centers, 'logits': None, 'embedding': None}
    if self._spec.reference_mask:
      state['embedding'] = self._initial_embedding(centers)
    outputs = []

    def run_layer(layer, pixels):
      logits = state['logits']
      if logits is not None and outputs:
        # At output stride 32 the stage-4 layers run at twice the resolution
        # of the stage-5 ones: the residual S of Eq. 6 is resized like the
        # final output's residual path.
        logits = resize_assignment_logits(
            logits, outputs[-1].pixels.shape[1:3], pixels.shape[1:3])
      inputs = (pixels, state['centers'], logits, state['embedding'])
      result = layer(inputs, training=training,
                     figure_outputs=figure_outputs)
      state.update(centers=result.centers, logits=result.assignment_logits,
                   embedding=result.reference_embedding)
      outputs.append(result)
      return result.pixels

    def hook(stage, index, x, unused_training):
      if stage == 5 and self._backbone_layers:
        return run_layer(self._backbone_layers[index], x)
      return x

    endpoints = self.backbone(images, training=training, block_hook=hook,
                              stage2_addend=stride4_feedback)
    x = endpoints['stage5']
    for stage, fuse, pairs in self._decoder_stages:
      if x.shape[-1] != fuse.channels:
        x = fuse([x, endpoints[f'stage{stage}']], training=training)
      for block, layer in pairs:
        x = run_layer(layer, block(x, training=training))
    x = self.decoder(x, endpoints, training=training)
    return StackOutput(x, state['centers'], endpoints, outputs)

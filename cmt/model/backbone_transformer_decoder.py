"""One stack of MaX-DeepLab / CMT-DeepLab before the heads: the backbone,
the dual-path transformer layers with the cluster centers, and the decoder
to stride 4 or 8.

The Recursive Feature Network stacks two of these (`cmt.model.cmt_deeplab`).
"""

import functools
from typing import Callable, Dict, List, NamedTuple, Optional

import tensorflow as tf
import tf_keras

from cmt.model import decoder
from cmt.model.backbone import axial_resnet
from cmt.model.layers import blocks
from cmt.model.layers import dual_path_transformer
from cmt.model.layers import norm_act
from cmt.model.layers import recompute

# ResNet stage -> stage index of the linear drop-path schedule (stem = 0).
_STAGE_DEPTH = {4: 3, 5: 4}

# (name, drop_rate=...) -> a dual-path layer with the model's widths and
# switches.
_TransformerLayerFactory = Callable[
    ..., dual_path_transformer.ClusteringMaskTransformerLayer]


class BackboneTransformerDecoderOutput(NamedTuple):
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


def _stage_drop_rate(backbone_options, stage: int) -> float:
  """Drop-path rate of the blocks added to backbone stage 4 or 5."""
  return norm_act.drop_path_rate(backbone_options.drop_path_rate,
                                 backbone_options.drop_path_schedule,
                                 _STAGE_DEPTH[stage])


def _transformer_layer_factory(model_options, norm: norm_act.NormConfig
                               ) -> _TransformerLayerFactory:
  """Dual-path layers of base width memory_channels / 2 (MaX: 128), so that
  their bottleneck equals the memory width."""
  transformer = model_options.transformer
  clustering = model_options.clustering
  return functools.partial(
      dual_path_transformer.ClusteringMaskTransformerLayer,
      norm=norm, activation=model_options.backbone.activation,
      filters=transformer.memory_channels // 2,
      num_heads=transformer.num_heads,
      feed_forward_channels=transformer.feed_forward_channels,
      clustering_update=clustering.clustering_update,
      reference_mask=clustering.reference_mask,
      coord_conv=clustering.coord_conv,
      num_reference_points=clustering.num_reference_points)


class BackboneTransformerDecoder(tf_keras.layers.Layer):
  """Backbone + transformer stages + upsampling decoder of one stack.

  `model_options` passed `model_checks.check_model` (`builder.build_model`
  runs it before building anything), so the fields are not checked again.
  The layer name 'encoder' and the attribute names are part of the
  checkpoint paths (`cmt.deeplab2.names`).
  """

  def __init__(self, model_options, norm: norm_act.NormConfig,
               name: str = 'encoder'):
    super().__init__(name=name)
    self._clustering = model_options.clustering
    self._num_centers = model_options.transformer.num_cluster_centers
    self._memory_channels = model_options.transformer.memory_channels
    new_layer = _transformer_layer_factory(model_options, norm)
    self.backbone = axial_resnet.AxialResNet(model_options.backbone, norm)
    self._backbone_layers = self._backbone_transformer_layers(
        model_options.backbone, new_layer)
    self._decoder_stages = self._transformer_stages(model_options, norm,
                                                    new_layer)
    self.decoder = decoder.UpsamplingDecoder(
        model_options.backbone.output_stride,
        model_options.decoder.high_resolution_output_stride,
        model_options.backbone.width_multiplier, norm,
        model_options.backbone.activation)
    self._configure_recompute(model_options.recompute)
    if self._clustering.reference_mask:
      # e of Eq. 9 before the first layer: projected from the initial centers.
      self._initial_embedding = tf_keras.layers.Dense(
          2 * self._clustering.num_reference_points,
          kernel_initializer=tf_keras.initializers.TruncatedNormal(
              stddev=0.01), name='reference_embedding')

  def _backbone_transformer_layers(self, backbone_options, new_layer):
    """MaX-DeepLab-S: a transformer layer after every stage-5 block of the
    backbone, with the drop-path rate of its block."""
    if not backbone_options.dual_path_in_backbone:
      return []
    return [new_layer(f'stage5_block{index + 1}_transformer',
                      drop_rate=block.drop_rate)
            for index, block in enumerate(self.backbone.stages[-1])]

  @staticmethod
  def _transformer_stages(model_options, norm, new_layer):
    """The decoder's dual-path stages: per `transformer_stages` entry, a fuse
    to the stage's width and `num_blocks` (axial block, transformer layer)
    pairs, as (backbone stage, fuse, pairs). MaX-DeepLab-S: one extra
    stage-5 axial block with a transformer."""
    backbone_options = model_options.backbone
    activation = backbone_options.activation
    stages = [(s.backbone_stage, s.num_blocks)
              for s in model_options.decoder.transformer_stages] or [(5, 1)]
    result = []
    for stage_index, (stage, count) in enumerate(stages):
      block_filters = axial_resnet.scaled(axial_resnet.BASE_FILTERS[stage - 2],
                                          backbone_options.width_multiplier)
      prefix = f'transformer_stage{stage_index + 1}'
      fuse = decoder.ResizedFuse(4 * block_filters, f'{prefix}_fuse', norm,
                                 activation)
      drop_rate = _stage_drop_rate(backbone_options, stage)
      pairs = [(blocks.ResidualBlock(
          block_filters, f'{prefix}_block{index + 1}', norm, activation,
          axial=True, drop_rate=drop_rate,
          query_region=backbone_options.axial_query_region),
                new_layer(f'{prefix}_block{index + 1}_transformer',
                          drop_rate=drop_rate))
               for index in range(count)]
      result.append((stage, fuse, pairs))
    return result

  def _configure_recompute(self, options):
    """Marks the blocks `model_options.recompute` selects."""
    axial_blocks = [block for _, _, pairs in self._decoder_stages
                    for block, _ in pairs]
    for stage_blocks in self.backbone.stages:
      for block in stage_blocks:
        recompute.configure(block, options.axial_blocks if block.axial
                            else options.conv_blocks)
    for block in axial_blocks:
      recompute.configure(block, options.axial_blocks)
    for layer in self.transformer_layers:
      recompute.configure(layer, options.transformer_layers)
    for layer in self.decoder.stage_layers:
      recompute.configure(layer, options.decoder_stages)

  @property
  def transformer_layers(self):
    return self._backbone_layers + [
        layer for _, _, pairs in self._decoder_stages for _, layer in pairs]

  def build(self, input_shape):
    self.cluster_centers = self.add_weight(
        name='memory_feature',
        shape=(self._num_centers, self._memory_channels),
        initializer=tf_keras.initializers.TruncatedNormal(stddev=1.0))

  def call(self, images, training=False,
           stride4_feedback: Optional[tf.Tensor] = None,
           figure_outputs: bool = False
           ) -> BackboneTransformerDecoderOutput:
    """`figure_outputs`: the transformer layers also return what only the
    figures use (`DualPathOutput.cross_attention`)."""
    centers = tf.tile(tf.cast(self.cluster_centers, images.dtype)[None],
                      [tf.shape(images)[0], 1, 1])
    state = {'centers': centers, 'logits': None, 'embedding': None}
    if self._clustering.reference_mask:
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
      if figure_outputs:  # The figures' forward pass: nothing to recompute.
        result = layer(inputs, training=training, figure_outputs=True)
      else:
        result = recompute.call(layer, inputs, training)
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
        x = run_layer(layer, recompute.call(block, x, training))
    x = self.decoder(x, endpoints, training=training)
    return BackboneTransformerDecoderOutput(x, state['centers'], endpoints,
                                            outputs)

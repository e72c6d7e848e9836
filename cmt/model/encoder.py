"""One MaX-DeepLab / CMT-DeepLab encoder: backbone, dual-path transformer
layers with the cluster centers, and the decoder to stride 4 or 8.

The Recursive Feature Network stacks two of these (`cmt.model.cmt_deeplab`).
"""

from typing import Dict, List, NamedTuple, Optional

import tensorflow as tf
import tf_keras

from cmt import model_checks
from cmt.model import decoder
from cmt.model.backbone import axial_resnet
from cmt.model.layers import blocks
from cmt.model.layers import dual_path_transformer
from cmt.model.layers import norm_act
from cmt.model.layers import recompute

# ResNet stage -> stage index of the linear drop-path schedule (stem = 0).
_STAGE_DEPTH = {4: 3, 5: 4}


class EncoderOutput(NamedTuple):
  # [B, h, w, C] pre-activation, at high_resolution_output_stride (4 or 8).
  high_resolution: tf.Tensor
  centers: tf.Tensor  # [B, N, Cm] cluster centers after the last layer.
  endpoints: Dict[str, tf.Tensor]  # Backbone endpoints 'stage1'..'stage5'.
  layers: List[dual_path_transformer.DualPathOutput]  # In order.


def transformer_filters(model_options) -> int:
  """Base width of a dual-path layer: memory_channels / 2 (MaX: 128), so its
  bottleneck equals the memory width."""
  channels = model_options.transformer.memory_channels
  problem = model_checks.transformer_width_problem(
      channels, model_options.transformer.num_heads)
  if problem:
    raise ValueError(problem)
  return channels // 2


def resize_assignment_logits(logits: tf.Tensor, size_from, size_to
                             ) -> tf.Tensor:
  """[B, h*w, N] assignment logits on a `size_from` grid -> `size_to` grid
  (bilinear, aligned corners); unchanged when the sizes agree."""
  if tuple(size_from) == tuple(size_to):
    return logits
  grid = tf.reshape(logits, [-1, *size_from, logits.shape[-1]])
  grid = norm_act.resize_align_corners(grid, size_to)
  return tf.reshape(grid, [-1, size_to[0] * size_to[1], logits.shape[-1]])


class Encoder(tf_keras.layers.Layer):
  """Backbone + transformer stages + upsampling decoder of one stack."""

  def __init__(self, model_options, norm: norm_act.NormConfig,
               name: str = 'encoder'):
    super().__init__(name=name)
    backbone_options = model_options.backbone
    transformer = model_options.transformer
    clustering = model_options.clustering
    self._clustering = clustering
    if transformer.num_cluster_centers < 1:
      raise ValueError('model_options.transformer.num_cluster_centers must be '
                       f'>= 1; got {transformer.num_cluster_centers}')
    if transformer.feed_forward_channels < 1:
      raise ValueError('model_options.transformer.feed_forward_channels must '
                       f'be >= 1; got {transformer.feed_forward_channels}')
    if clustering.reference_mask and clustering.num_reference_points < 1:
      raise ValueError('model_options.clustering.num_reference_points must be '
                       f'>= 1; got {clustering.num_reference_points}')
    activation = backbone_options.activation
    self._activation = norm_act.get_activation(activation)
    self.backbone = axial_resnet.AxialResNet(backbone_options, norm)
    self._num_centers = transformer.num_cluster_centers
    self._memory_channels = transformer.memory_channels
    width = backbone_options.width_multiplier
    rate = backbone_options.drop_path_rate
    schedule = backbone_options.drop_path_schedule
    filters = transformer_filters(model_options)

    def make_layer(name, stage, drop_rate=None):
      if drop_rate is None:
        drop_rate = norm_act.drop_path_rate(rate, schedule,
                                            _STAGE_DEPTH[stage])
      return dual_path_transformer.ClusteringMaskTransformerLayer(
          name, norm, activation, filters=filters,
          num_heads=transformer.num_heads,
          feed_forward_channels=transformer.feed_forward_channels,
          clustering_update=clustering.clustering_update,
          reference_mask=clustering.reference_mask,
          coord_conv=clustering.coord_conv,
          num_reference_points=clustering.num_reference_points,
          drop_rate=drop_rate)

    # MaX-DeepLab-S: a transformer layer after every stage-5 block, with the
    # drop-path rate of its block.
    self._backbone_layers = []
    if backbone_options.dual_path_in_backbone:
      for index, block in enumerate(self.backbone.stages[-1]):
        self._backbone_layers.append(
            make_layer(f'stage5_block{index + 1}_transformer', 5,
                       block.drop_rate))

    stages = [(s.backbone_stage, s.num_blocks)
              for s in model_options.decoder.transformer_stages]
    if not stages:
      # MaX-DeepLab-S: one extra stage-5 axial block with a transformer.
      stages = [(5, 1)]
    self._decoder_stages = []
    for stage_index, (stage, count) in enumerate(stages):
      if stage not in _STAGE_DEPTH:
        raise ValueError('model_options.decoder.transformer_stages'
                         f'[{stage_index}].backbone_stage must be 4 or 5; got '
                         f'{stage}')
      if count < 1:
        raise ValueError('model_options.decoder.transformer_stages'
                         f'[{stage_index}].num_blocks must be >= 1; got '
                         f'{count}')
      block_filters = axial_resnet.scaled(axial_resnet.BASE_FILTERS[stage - 2],
                                          width)
      prefix = f'transformer_stage{stage_index + 1}'
      fuse = decoder.ResizedFuse(4 * block_filters, f'{prefix}_fuse', norm,
                                 activation)
      pairs = []
      for index in range(count):
        pairs.append((
            blocks.ResidualBlock(
                block_filters, f'{prefix}_block{index + 1}', norm, activation,
                axial=True,
                drop_rate=norm_act.drop_path_rate(rate, schedule,
                                                  _STAGE_DEPTH[stage]),
                query_region=backbone_options.axial_query_region),
            make_layer(f'{prefix}_block{index + 1}_transformer', stage)))
      self._decoder_stages.append((stage, fuse, pairs))
    self.decoder = decoder.UpsamplingDecoder(
        backbone_options.output_stride,
        model_options.decoder.high_resolution_output_stride, width, norm,
        activation)
    self._configure_recompute(model_options.recompute)
    if clustering.reference_mask:
      # e of Eq. 9 before the first layer: projected from the initial centers.
      self._initial_embedding = tf_keras.layers.Dense(
          2 * clustering.num_reference_points,
          kernel_initializer=tf_keras.initializers.TruncatedNormal(
              stddev=0.01), name='reference_embedding')

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
           figure_outputs: bool = False) -> EncoderOutput:
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
    return EncoderOutput(x, state['centers'], endpoints, outputs)

"""What a backbone provides to the stack that holds it (`cmt.model.stack`).

A backbone is a Keras layer built from a `spec.BackboneSpec` and a
`norm_act.NormConfig` by the builder that `cmt.model.backbone.builders.BUILDERS`
lists under its `BackboneOptions.Name`. It must give:

  * `spec`: the `BackboneSpec` it was built from; the endpoint widths are
    `spec.width(stage)` (4 x `BASE_FILTERS` x width_multiplier) and the
    stage-5 blocks carry MaX-DeepLab-S's backbone transformer layers;
  * `stages`: its residual blocks per stage 2-5, in call order, each with
    `.drop_rate` and `.axial` (the partial pretrained start,
    `builder.backbone_variables`, counts blocks here);
  * `call(images, training, block_hook, stage2_addend)` -> endpoints
    'stage1'..'stage5' (pre-activation, strides 2, 4, 8, 16, 16 or 32),
    calling `block_hook(stage, index, x, training)` after every block of
    stages 2-5 and adding `stage2_addend` to the stage-2 output (the
    Recursive Feature Network's stride-4 connection).

Tracked attribute names are checkpoint paths (`cmt.deeplab2.names`).
"""

from typing import Callable, Dict, Optional, Protocol, Sequence

import tensorflow as tf

from cmt.model import spec

# hook(stage, block_index, features, training) -> features
BlockHook = Callable[[int, int, tf.Tensor, bool], tf.Tensor]


class BackboneBlock(Protocol):
  drop_rate: float
  axial: bool


class Backbone(Protocol):
  """The contract of the module docstring."""
  spec: spec.BackboneSpec
  stages: Sequence[Sequence[BackboneBlock]]
  variables: Sequence[tf.Variable]

  def __call__(self, images: tf.Tensor, training: bool = False,
               block_hook: Optional[BlockHook] = None,
               stage2_addend: Optional[tf.Tensor] = None
               ) -> Dict[str, tf.Tensor]:
    ...

"""Backbones by name: `build(backbone_spec, norm)` builds the one that
`BUILDERS` lists under `backbone_spec.name` (a `BackboneOptions.Name`); each
satisfies `contract.Backbone`."""

from typing import Callable, Dict

from cmt.model import spec
from cmt.model.backbone import axial_resnet
from cmt.model.backbone import contract

# BackboneOptions.Name -> (BackboneSpec, NormConfig) -> backbone. The names
# are those of `spec.BLOCKS_PER_STAGE` (the checks' list).
BUILDERS: Dict[str, Callable[..., contract.Backbone]] = {
    'AXIAL_RESNET_50': axial_resnet.AxialResNet,
    'AXIAL_RESNET_104': axial_resnet.AxialResNet,
}


def build(backbone: spec.BackboneSpec, norm) -> contract.Backbone:
  return BUILDERS[backbone.name](backbone, norm)

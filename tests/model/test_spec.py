"""`cmt.model.spec`: the protos resolved into the layout the layers build."""

import subprocess
import sys

from cmt.model import spec
from tests.conftest import REPO_ROOT
from tests.model import helpers


def _spec(*overrides) -> spec.ModelSpec:
  options = helpers.load(*overrides)
  return spec.ModelSpec.from_options(options.model_options,
                                     options.trainer_options.solver_options)


def test_max_s_layout_strides_and_its_extra_stage5_block():
  max_s = _spec()
  assert [len(s) for s in max_s.backbone.stages] == [3, 4, 6, 3]
  firsts = [(s[0].strides, s[0].dilation) for s in max_s.backbone.stages]
  # Output stride 16: stage 5 keeps the resolution and dilates.
  assert firsts == [(2, 1), (2, 1), (2, 1), (1, 1)]
  assert max_s.backbone.stages[3][1].dilation == 2
  assert [b.axial for b in max_s.backbone.stages[2]] == [False] + [True] * 5
  assert [layer.name for layer in max_s.backbone_layers] == [
      f'stage5_block{i}_transformer' for i in (1, 2, 3)]
  (stage,) = max_s.transformer_stages
  assert (stage.backbone_stage, len(stage.pairs), stage.channels) == (
      5, 1, 2048)
  assert max_s.decoder.strides == (8, 4)
  assert max_s.backbone.width(4) == 1024


def test_stronger_decoder_and_recompute_flags():
  model = _spec(*helpers.STRONGER_DECODER,
                'model_options.recompute.conv_blocks=true',
                'model_options.recompute.axial_blocks=false',
                'model_options.recompute.transformer_layers=true')
  assert model.backbone_layers == ()
  assert [(s.backbone_stage, len(s.pairs), s.channels)
          for s in model.transformer_stages] == [(5, 3, 2048), (4, 3, 1024)]
  for stage in model.backbone.stages:
    assert all(b.recompute == (not b.axial) for b in stage)
  assert all(not block.recompute and layer.recompute
             for s in model.transformer_stages for block, layer in s.pairs)


def test_the_spec_and_the_checks_import_no_tensorflow():
  code = ('import sys; from cmt import model_checks; '
          'from cmt.model import spec; '
          'assert "tensorflow" not in sys.modules, "tensorflow imported"')
  subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, check=True)

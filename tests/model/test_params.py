"""Parameter counts: `cmt-config params` and the paper's Table 1 / 2c rows."""

import pytest

from cmt.data import dataset_info as dataset_info_lib
from cmt.model import builder
from cmt.tools import config as config_tool
from tests.model import helpers


def test_cmt_config_params_prints_max_deeplab_s_count(capsys):
  assert config_tool.main(['params', helpers.BASELINE]) == 0
  out = capsys.readouterr().out
  # DeepLab2 counts MaX-DeepLab-S at exactly 61,900,200 without the
  # auxiliary semantic head; the paper reports 61.9M.
  assert '61,900,200 parameters (61.9M)' in out


# (switches, paper's count in millions, tolerance). The location-only row
# is 1.2% under the paper (see ClusteringMaskTransformerLayer's docstring).
ROWS = {
    'baseline': ((), 61.9, 0.005),
    'clustering': (helpers.CLUSTERING, 61.9, 0.01),
    'location': (helpers.LOCATION, 65.5, 0.02),
    'decoder': (helpers.STRONGER_DECODER, 91.0, 0.01),
    'clustering+decoder': (helpers.CLUSTERING + helpers.STRONGER_DECODER,
                           91.0, 0.01),
    'cmt_r50': (helpers.CLUSTERING + helpers.LOCATION +
                helpers.STRONGER_DECODER, 94.9, 0.01),
    'cmt_r104': (helpers.CLUSTERING + helpers.LOCATION +
                 helpers.STRONGER_DECODER + helpers.R104, 135.2, 0.01),
    'cmt_r104_rfn': (helpers.CLUSTERING + helpers.LOCATION +
                     helpers.STRONGER_DECODER + helpers.R104 + helpers.RFN,
                     270.3, 0.01),
}


@pytest.mark.slow
@pytest.mark.parametrize('row', sorted(ROWS))
def test_parameter_count_matches_the_paper(row):
  switches, paper, tolerance = ROWS[row]
  options = helpers.load(*switches)
  count = builder.count_inference_params(
      options, dataset_info_lib.COCO_PANOPTIC) / 1e6
  assert abs(count - paper) / paper <= tolerance, (row, count, paper)

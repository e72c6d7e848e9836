"""The rows of the paper's Tables 1 (CMT-DeepLab rows), 2a-2d and 3.

This is the one place that records, for every row: the table and the row's
label as printed, the config under `configs/` that reproduces it, what the
row trains (read from the table's columns and Sec. 4), and the paper's
COCO val numbers (PQ / PQ-Th / PQ-St, and the parameter count where the
paper prints one). `cmt-paper-tables` prints from it; the config tests check
each config against the row's `Recipe`, and the numbers against the paper.

Reading of the paper taken here (Tables 2a-2c are "accumulative"):
- The ablations (Table 2) use Axial-R50, ImageNet-1K, crop 641, 100k steps
  (Sec. 4.2) and per-pixel post-processing: Table 2d adds mask-wise merging
  only in its last row.
- "clustering update" in Table 2c is Table 2a's last row: its numbers (47.5 /
  51.1 / 42.1) are those of clustering update + pixel-wise contrastive loss,
  so every row with the clustering update uses the Eq. 14 loss; rows without
  it keep MaX-DeepLab's mask-centre instance discrimination.
- "location" in Table 2c is Table 2b's last row (reference masks +
  coord-conv; same numbers, 46.9 / 50.6 / 41.3).
- Table 2d's first row is Table 2c's last row (48.4 / 52.1 / 42.8); its RFN
  rows stack the Axial-R50 model (the ablation backbone).
- Table 1's rows are Table 3's 1281 rows (ImageNet-22K, mask-wise merge).
- A parameter count depends on the architecture only (not crop, steps,
  loss or pretraining), so a row whose architecture the paper counts in
  another table carries that count, with `paper_params_source` naming it.
"""

import dataclasses
from typing import Optional

BASELINE_CONFIG = 'coco/max_deeplab/max_deeplab_s_gelu_res641_100k.textproto'
CMT_DIR = 'coco/cmt_deeplab/'

TABLE_TITLES = {
    '1': ('Table 1. COCO val, CMT-DeepLab rows (ImageNet-22K, crop 1281, '
          'mask-wise merge)'),
    '2a': ('Table 2a. Clustering update (Axial-R50, ImageNet-1K, crop 641, '
           '100k, per-pixel)'),
    '2b': ('Table 2b. Location-sensitive clustering (Axial-R50, ImageNet-1K, '
           'crop 641, 100k, per-pixel)'),
    '2c': ('Table 2c. Architecture (Axial-R50, ImageNet-1K, crop 641, 100k, '
           'per-pixel)'),
    '2d': ('Table 2d. Pretraining, post-processing, scaling (Axial-R50, crop '
           '641, 100k)'),
    '3': ('Table 3. Input resolution / backbone / training iterations '
          '(ImageNet-22K, mask-wise merge)'),
}
TABLES = tuple(TABLE_TITLES)

# The stronger decoder's (backbone stage, dual-path blocks), Sec. 3.4: six
# self- and six cross-attention modules, as DETR, in place of the backbone's
# dual-path blocks.
STRONGER_DECODER_STAGES = ((5, 3), (4, 3))


@dataclasses.dataclass(frozen=True)
class Recipe:
  """What a row trains; all False/defaults is the MaX-DeepLab-S baseline."""
  backbone: str = 'AXIAL_RESNET_50'  # or 'AXIAL_RESNET_104'
  clustering_update: bool = False  # Eq. 6-8
  pixel_contrastive_loss: bool = False  # Eq. 14 instead of MaX's loss
  reference_mask: bool = False  # Eq. 9-10, trained by Eq. 13
  coord_conv: bool = False  # Eq. 11-12
  stronger_decoder: bool = False  # 3 + 3 dual-path blocks, Sec. 3.4
  recursive_feature_network: bool = False
  imagenet_22k: bool = False
  mask_wise_merge: bool = False
  crop: int = 641
  steps: int = 100_000

  def describe(self) -> str:
    """A short English summary for config headers."""
    parts = ['Axial-R104' if self.backbone == 'AXIAL_RESNET_104'
             else 'Axial-R50']
    if self.recursive_feature_network:
      parts[0] += '-RFN'
    parts.append('ImageNet-22K' if self.imagenet_22k else 'ImageNet-1K')
    parts += [f'crop {self.crop}', f'{self.steps // 1000}k steps',
              'mask-wise merge' if self.mask_wise_merge else 'per-pixel']
    return ', '.join(parts)


@dataclasses.dataclass(frozen=True)
class PanopticQuality:
  """COCO val PQ, PQ-Th, PQ-St in percent."""
  pq: float
  pq_things: float
  pq_stuff: float


@dataclasses.dataclass(frozen=True)
class PaperRow:
  table: str  # a key of TABLE_TITLES
  row: str  # the row as the paper prints it
  config: str  # path relative to the configs root
  recipe: Recipe
  paper: PanopticQuality
  # Millions, as printed; None where the paper gives no count for this
  # architecture.
  paper_params_m: Optional[float] = None
  # Empty when the row's own table prints the count; else where it is.
  paper_params_source: str = ''

  @property
  def paper_params(self) -> Optional[int]:
    if self.paper_params_m is None:
      return None
    return int(round(self.paper_params_m * 1e6))


def _pq(pq, things, stuff):
  return PanopticQuality(pq, things, stuff)


# Architectures the paper counts, and where.
_R50 = Recipe(clustering_update=True, pixel_contrastive_loss=True,
              reference_mask=True, coord_conv=True, stronger_decoder=True)
_R50_22K = dataclasses.replace(_R50, imagenet_22k=True, mask_wise_merge=True)
_R104_22K = dataclasses.replace(_R50_22K, backbone='AXIAL_RESNET_104')
_R104_RFN_22K = dataclasses.replace(_R104_22K, recursive_feature_network=True)
_FROM_2C = 'Table 2c, row "{}" (same architecture)'
_FROM_T1 = 'Table 1, row "{}" (same architecture)'
_T1_R50 = 'CMT-DeepLab, Axial-R50‡'
_T1_R104 = 'CMT-DeepLab, Axial-R104‡'
_T1_RFN = 'CMT-DeepLab, Axial-R104‡-RFN'

# Configs shared by rows of several tables.
_CLUSTERING = CMT_DIR + 'table2a_table2c_clustering_update_r50_res641_100k.textproto'
_LOCATION = (CMT_DIR + 'table2b_table2c_location_sensitive_clustering_r50_'
             'res641_100k.textproto')
_ALL_R50 = (CMT_DIR + 'table2c_table2d_clustering_location_decoder_r50_'
            'res641_100k.textproto')
_T1_T3 = CMT_DIR + 'table1_table3_{}.textproto'

ROWS = (
    # Table 1: CMT-DeepLab rows (val set).
    PaperRow('1', _T1_R50, _T1_T3.format('r50_res1281_100k'),
             dataclasses.replace(_R50_22K, crop=1281),
             _pq(53.0, 57.7, 45.9), 94.9),
    PaperRow('1', _T1_R104, _T1_T3.format('r104_res1281_100k'),
             dataclasses.replace(_R104_22K, crop=1281),
             _pq(54.1, 58.8, 47.1), 135.2),
    PaperRow('1', _T1_RFN, _T1_T3.format('r104_rfn_res1281_100k'),
             dataclasses.replace(_R104_RFN_22K, crop=1281),
             _pq(55.1, 60.6, 46.8), 270.3),
    PaperRow('1', 'CMT-DeepLab (iter 200k), Axial-R104‡-RFN',
             CMT_DIR + 'table1_r104_rfn_res1281_200k.textproto',
             dataclasses.replace(_R104_RFN_22K, crop=1281, steps=200_000),
             _pq(55.3, 61.0, 46.6), 270.3),
    # Table 2a: clustering update.
    PaperRow('2a', 'baseline', BASELINE_CONFIG, Recipe(),
             _pq(46.2, 50.0, 40.5), 61.9, _FROM_2C.format('baseline')),
    PaperRow('2a', '+ clustering transformer',
             CMT_DIR + 'table2a_clustering_transformer_r50_res641_100k.textproto',
             Recipe(clustering_update=True), _pq(47.1, 51.0, 41.1), 61.9,
             _FROM_2C.format('clustering update')),
    PaperRow('2a', '+ pixel-wise contrastive loss', _CLUSTERING,
             Recipe(clustering_update=True, pixel_contrastive_loss=True),
             _pq(47.5, 51.1, 42.1), 61.9,
             _FROM_2C.format('clustering update')),
    # Table 2b: location-sensitive clustering.
    PaperRow('2b', 'baseline', BASELINE_CONFIG, Recipe(),
             _pq(46.2, 50.0, 40.5), 61.9, _FROM_2C.format('baseline')),
    PaperRow('2b', '+ ref. mask pred.',
             CMT_DIR + 'table2b_reference_mask_r50_res641_100k.textproto',
             Recipe(reference_mask=True), _pq(46.6, 50.3, 40.9)),
    PaperRow('2b', '+ coord-conv', _LOCATION,
             Recipe(reference_mask=True, coord_conv=True),
             _pq(46.9, 50.6, 41.3), 65.5, _FROM_2C.format('location')),
    # Table 2c: architecture.
    PaperRow('2c', 'baseline', BASELINE_CONFIG, Recipe(),
             _pq(46.2, 50.0, 40.5), 61.9),
    PaperRow('2c', 'clustering update', _CLUSTERING,
             Recipe(clustering_update=True, pixel_contrastive_loss=True),
             _pq(47.5, 51.1, 42.1), 61.9),
    PaperRow('2c', 'location', _LOCATION,
             Recipe(reference_mask=True, coord_conv=True),
             _pq(46.9, 50.6, 41.3), 65.5),
    PaperRow('2c', 'decoder',
             CMT_DIR + 'table2c_stronger_decoder_r50_res641_100k.textproto',
             Recipe(stronger_decoder=True), _pq(47.1, 51.3, 40.9), 91.0),
    PaperRow('2c', 'clustering update + decoder',
             CMT_DIR + 'table2c_clustering_decoder_r50_res641_100k.textproto',
             Recipe(clustering_update=True, pixel_contrastive_loss=True,
                    stronger_decoder=True),
             _pq(48.1, 51.9, 42.2), 91.0),
    PaperRow('2c', 'clustering update + location + decoder', _ALL_R50, _R50,
             _pq(48.4, 52.1, 42.8), 94.9),
    # Table 2d: pretraining, post-processing, scaling.
    PaperRow('2d', 'CMT-DeepLab (ImageNet-1K, per-pixel)', _ALL_R50, _R50,
             _pq(48.4, 52.1, 42.8), 94.9,
             _FROM_2C.format('clustering update + location + decoder')),
    PaperRow('2d', '+ ImageNet-22K',
             CMT_DIR + 'table2d_in22k_r50_res641_100k.textproto',
             dataclasses.replace(_R50, imagenet_22k=True),
             _pq(49.3, 53.3, 43.4), 94.9,
             _FROM_2C.format('clustering update + location + decoder')),
    PaperRow('2d', '+ RFN', CMT_DIR + 'table2d_in22k_rfn_r50_res641_100k.textproto',
             dataclasses.replace(_R50, imagenet_22k=True,
                                 recursive_feature_network=True),
             _pq(50.1, 54.8, 43.0)),
    PaperRow('2d', '+ mask-wise merge',
             CMT_DIR + 'table2d_in22k_rfn_mask_wise_r50_res641_100k.textproto',
             dataclasses.replace(_R50_22K, recursive_feature_network=True),
             _pq(50.6, 54.8, 44.3)),
    # Table 3: see _TABLE_3 below.
)

_TABLE_3_BACKBONES = {  # name -> (recipe, Table 1 row that counts it, params)
    'R50': (_R50_22K, _T1_R50, 94.9),
    'R104': (_R104_22K, _T1_R104, 135.2),
    'R104-RFN': (_R104_RFN_22K, _T1_RFN, 270.3),
}


def _table_3_row(crop: int, backbone: str, steps_k: int,
                 paper: PanopticQuality) -> PaperRow:
  """Table 3's row "crop, Axial-<backbone>, <steps>k"; configs named alike."""
  recipe, table_1_row, params = _TABLE_3_BACKBONES[backbone]
  in_table_1 = crop == 1281 and steps_k == 100
  name = (f'{"table1_table3" if in_table_1 else "table3"}_'
          f'{backbone.lower().replace("-", "_")}_res{crop}_{steps_k}k')
  return PaperRow(
      '3', f'{crop}, Axial-{backbone}, {steps_k}k',
      CMT_DIR + name + '.textproto',
      dataclasses.replace(recipe, crop=crop, steps=steps_k * 1000), paper,
      params, _FROM_T1.format(table_1_row))


ROWS += tuple(_table_3_row(*args) for args in (
    (641, 'R50', 100, _pq(50.1, 53.5, 44.9)),
    (641, 'R50', 200, _pq(50.6, 54.5, 44.8)),
    (1281, 'R50', 100, _pq(53.0, 57.7, 45.9)),
    (1281, 'R50', 200, _pq(53.5, 58.5, 45.9)),
    (641, 'R104', 100, _pq(51.7, 55.4, 46.4)),
    (641, 'R104', 200, _pq(52.2, 56.4, 46.0)),
    (1281, 'R104', 100, _pq(54.1, 58.8, 47.1)),
    (1281, 'R104-RFN', 100, _pq(55.1, 60.6, 46.8)),
))


def rows_of(table: str) -> tuple[PaperRow, ...]:
  return tuple(r for r in ROWS if r.table == table)

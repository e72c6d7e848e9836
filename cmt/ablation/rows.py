"""The rows `cmt-ablate` trains: Table 2a, 2b and 2c as switches of one
config.

Each row is a paper row of `cmt.evaluation.paper_table_rows` (its `Recipe`
says what it turns on, its COCO numbers give the paper's delta over the
MaX-DeepLab-S baseline). Table 2a and 2b are accumulative from the same
baseline: "+ pixel-wise contrastive" keeps the clustering update, "+
coord-conv" keeps the reference masks; 2b's rows keep MaX-DeepLab's
mask-centre loss. Table 2c combines them with the stronger decoder; its
"clustering update" is 2a's last row and its "location" 2b's last row, so
only its three decoder rows are new here. By default `cmt-ablate` runs the
2a/2b rows (`DEFAULT_ROW_KEYS`); a decoder row takes about 1.5 times as long.
"""

import dataclasses

from cmt.evaluation import paper_table_rows


@dataclasses.dataclass(frozen=True)
class AblationRow:
  key: str  # folder name of its runs
  label: str
  paper_row: paper_table_rows.PaperRow

  @property
  def recipe(self) -> paper_table_rows.Recipe:
    return self.paper_row.recipe

  def overrides(self) -> list[str]:
    """`--override` values turning the base config (the baseline) into this
    row."""
    recipe = self.recipe
    loss = ('PIXEL_CONTRASTIVE' if recipe.pixel_contrastive_loss
            else 'MASK_CENTER')
    overrides = [
        f'model_options.clustering.clustering_update='
        f'{str(recipe.clustering_update).lower()}',
        f'model_options.clustering.reference_mask='
        f'{str(recipe.reference_mask).lower()}',
        f'model_options.clustering.coord_conv={str(recipe.coord_conv).lower()}',
        f'trainer_options.loss_options.instance_discrimination_loss.type={loss}',
    ]
    if recipe.stronger_decoder:
      overrides.append('model_options.backbone.dual_path_in_backbone=false')
      for index, (stage, blocks) in enumerate(
          paper_table_rows.STRONGER_DECODER_STAGES):
        stage_field = f'model_options.decoder.transformer_stages[{index}]'
        overrides += [f'{stage_field}.backbone_stage={stage}',
                      f'{stage_field}.num_blocks={blocks}']
    return overrides

  def new_losses(self) -> tuple[str, ...]:
    """The loss terms (TensorBoard tags) this row adds to the baseline's."""
    return tuple(
        tag for tag, added in (
            ('instance_discrimination_loss',
             self.recipe.pixel_contrastive_loss),
            ('mask_approximation_loss', self.recipe.reference_mask))
        if added)

  def paper_delta(self) -> tuple[float, float, float]:
    """The paper's (PQ, PQ-Th, PQ-St) over its baseline, COCO val."""
    base, row = BASELINE.paper_row.paper, self.paper_row.paper
    return (round(row.pq - base.pq, 1),
            round(row.pq_things - base.pq_things, 1),
            round(row.pq_stuff - base.pq_stuff, 1))


def _paper_row(table: str, label: str) -> paper_table_rows.PaperRow:
  (row,) = [r for r in paper_table_rows.rows_of(table) if r.row == label]
  return row


BASELINE = AblationRow('baseline', 'baseline (MaX-S)',
                       _paper_row('2a', 'baseline'))
ROWS = (
    BASELINE,
    AblationRow('clustering_update', '+ clustering update',
                _paper_row('2a', '+ clustering transformer')),
    AblationRow('pixel_contrastive', '+ pixel-wise contrastive',
                _paper_row('2a', '+ pixel-wise contrastive loss')),
    AblationRow('reference_mask', '+ reference mask',
                _paper_row('2b', '+ ref. mask pred.')),
    AblationRow('coord_conv', '+ coord-conv (location)',
                _paper_row('2b', '+ coord-conv')),
    AblationRow('decoder', '+ stronger decoder',
                _paper_row('2c', 'decoder')),
    AblationRow('clustering_decoder', 'clustering + decoder',
                _paper_row('2c', 'clustering update + decoder')),
    AblationRow('cmt', 'clust. + loc. + decoder',
                _paper_row('2c', 'clustering update + location + decoder')),
)
ROW_KEYS = tuple(r.key for r in ROWS)
DEFAULT_ROW_KEYS = ROW_KEYS[:5]  # Table 2a and 2b


def row_of(key: str) -> AblationRow:
  for row in ROWS:
    if row.key == key:
      return row
  raise ValueError(f'unknown row {key!r}; choose from {", ".join(ROW_KEYS)}')

"""The paper configs: each exists, validates, and trains what its row says."""

import pathlib
import re

import pytest

from cmt.evaluation import paper_table_rows
from cmt.evaluation import paper_tables
from cmt.protos import evaluator_pb2
from cmt.protos import model_pb2
from cmt.protos import trainer_pb2
from cmt.tools import config as config_tool

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / 'configs'
ROWS = paper_table_rows.ROWS
CONFIG_PATHS = sorted({r.config for r in ROWS})
CMT_CONFIGS = sorted(p for p in CONFIG_PATHS
                     if p.startswith(paper_table_rows.CMT_DIR))


def load(relative_path):
  return paper_tables.load_experiment(CONFIGS, relative_path)


def header_text(relative_path) -> str:
  """The leading comment block, unwrapped into one line."""
  lines = []
  for line in (CONFIGS / relative_path).read_text().splitlines():
    if not line.startswith('#'):
      break
    lines.append(line.lstrip('#').strip())
  return ' '.join(' '.join(lines).split())


def test_every_row_config_exists_and_validates(capsys):
  paths = [str(CONFIGS / p) for p in CONFIG_PATHS]
  missing = [p for p in paths if not pathlib.Path(p).is_file()]
  assert not missing
  assert config_tool.main(['validate', *paths]) == 0, capsys.readouterr().err


def test_every_cmt_config_reproduces_some_row():
  on_disk = sorted(str(p.relative_to(CONFIGS)) for p in
                   (CONFIGS / paper_table_rows.CMT_DIR).glob('*.textproto'))
  assert on_disk == CMT_CONFIGS


def test_experiment_names_are_the_file_names_and_unique():
  names = [load(p).experiment_name for p in CONFIG_PATHS]
  assert names == [pathlib.Path(p).stem for p in CONFIG_PATHS]


@pytest.mark.parametrize('relative_path', CMT_CONFIGS)
def test_header_names_its_rows_numbers_and_launch(relative_path):
  header = header_text(relative_path)
  served = [r for r in ROWS if r.config == relative_path]
  for row in served:
    assert f'Table {row.table}, row "{row.row}"' in header
    paper = row.paper
    assert (f'PQ {paper.pq}, PQ-Th {paper.pq_things}, PQ-St '
            f'{paper.pq_stuff}') in header
    if row.paper_params_m is not None:
      assert f'{row.paper_params_m}M params' in header
    else:
      assert 'params not reported by the paper' in header
  recipe = served[0].recipe
  placeholder = ('${INIT_CHECKPOINT_IN22K}' if recipe.imagenet_22k
                 else '${INIT_CHECKPOINT_IN1K}')
  assert placeholder in header
  assert f'cmt-train --config_file=configs/{relative_path}' in header


def _implemented_recipe(options) -> paper_table_rows.Recipe:
  """Reads back, from a config, the Recipe fields it implements."""
  model = options.model_options
  clustering = model.clustering
  stages = [(s.backbone_stage, s.num_blocks)
            for s in model.decoder.transformer_stages]
  stronger_stages = list(paper_table_rows.STRONGER_DECODER_STAGES)
  stronger = stages == stronger_stages
  # The stronger decoder replaces the backbone's dual-path blocks (Sec. 3.4).
  assert model.backbone.dual_path_in_backbone == (not stronger)
  assert stages in ([], stronger_stages), stages
  loss = options.trainer_options.loss_options
  discrimination = loss.instance_discrimination_loss
  checkpoint = model.initial_checkpoint
  crop = list(options.train_dataset_options.crop_size)
  assert crop[0] == crop[1]
  assert list(options.eval_dataset_options.crop_size) == crop
  post = options.evaluator_options.post_processing
  return paper_table_rows.Recipe(
      backbone=model_pb2.BackboneOptions.Name.Name(model.backbone.name),
      clustering_update=clustering.clustering_update,
      pixel_contrastive_loss=(discrimination.type == trainer_pb2.
                              InstanceDiscriminationOptions.PIXEL_CONTRASTIVE),
      reference_mask=clustering.reference_mask,
      coord_conv=clustering.coord_conv,
      stronger_decoder=stronger,
      recursive_feature_network=model.recursive_feature_network,
      imagenet_22k='IN22K' in checkpoint,
      mask_wise_merge=post == evaluator_pb2.EvaluatorOptions.MASK_WISE,
      crop=crop[0],
      steps=options.trainer_options.solver_options.training_number_of_steps)


@pytest.mark.parametrize('row', ROWS, ids=lambda r: f'{r.table}:{r.row}')
def test_config_implements_its_rows_recipe(row):
  options = load(row.config)
  assert _implemented_recipe(options) == row.recipe
  if row.config.startswith(paper_table_rows.CMT_DIR):
    checkpoint = options.model_options.initial_checkpoint
    assert checkpoint in ('${INIT_CHECKPOINT_IN1K}', '${INIT_CHECKPOINT_IN22K}')


@pytest.mark.parametrize('relative_path', CONFIG_PATHS)
def test_config_keeps_the_papers_training_facts(relative_path):
  options = load(relative_path)
  solver = options.trainer_options.solver_options
  assert solver.optimizer == trainer_pb2.SolverOptions.ADAM
  assert solver.base_learning_rate == pytest.approx(1e-3)
  assert solver.warmup_steps == 5000
  assert solver.backbone_learning_rate_multiplier == pytest.approx(0.1)
  assert solver.weight_decay == 0.0
  assert options.train_dataset_options.batch_size == 64
  model = options.model_options
  assert model.backbone.activation == model_pb2.GELU
  assert model.backbone.drop_path_rate == pytest.approx(0.2)
  assert model.transformer.num_cluster_centers == 128
  assert model.clustering.num_reference_points == 8
  loss = options.trainer_options.loss_options
  if (loss.instance_discrimination_loss.type ==
      trainer_pb2.InstanceDiscriminationOptions.PIXEL_CONTRASTIVE):
    assert loss.instance_discrimination_loss.sample_count == 4096
  if model.clustering.reference_mask:
    assert loss.HasField('mask_approximation_loss')
    assert loss.mask_approximation_loss.weight == 1.0


def test_table_1_uses_crop_1281_and_the_ablations_crop_641():
  # A guard on the registry itself, read from Sec. 4 / 4.2 of the paper.
  for row in ROWS:
    if row.table == '1':
      assert row.recipe.crop == 1281 and row.recipe.imagenet_22k
    if row.table in ('2a', '2b', '2c', '2d'):
      assert row.recipe.crop == 641 and row.recipe.steps == 100_000
    if row.table == '3':
      crop, _, steps = row.row.split(', ')
      assert row.recipe.crop == int(crop)
      assert row.recipe.steps == int(re.sub('k$', '000', steps))

"""`cmt-import-deeplab2`, and fine-tuning what it writes."""

import re

import numpy as np
import pytest

from cmt.deeplab2 import import_checkpoint as import_deeplab2
from cmt.tools import import_deeplab2 as import_deeplab2_main
from cmt.tools import train as train_main
from tests.deeplab2_import import conftest
from tests.trainer.conftest import synthetic_records  # pylint: disable=unused-import

FIXTURE_CONFIG = str(conftest.HERE / 'max_deeplab_s_fixture.textproto')
# What depends on the class count: the class head and the semantic logits.
CLASS_DEPENDENT = {'model/center_heads/_class_head/kernel',
                   'model/center_heads/_class_head/bias',
                   'model/semantic_head/_head/_output/kernel',
                   'model/semantic_head/_head/_output/bias'}


def _import(fixtures, output_dir, *extra):
  return import_deeplab2_main.main([
      f'--deeplab2_checkpoint={fixtures / "max_deeplab_s" / "ckpt"}',
      f'--config_file={FIXTURE_CONFIG}', f'--output_dir={output_dir}',
      *extra])


@pytest.mark.slow
def test_imported_checkpoint_fine_tunes_with_another_class_count(
    deeplab2_fixtures, synthetic_records, tmp_path, capsys):
  imported = tmp_path / 'imported'
  assert _import(deeplab2_fixtures, imported) == 0
  printed = capsys.readouterr().out
  assert '# left at initialisation: 0' in printed
  assert '# DeepLab2 variables not used: 0' in printed
  assert ('mapped model/center_heads/_class_head/bias <- '
          'transformer_class_head/_conv/bias') in printed
  assert (imported / import_deeplab2.REPORT_NAME).is_file()

  # 2 steps on the synthetic dataset (another class count than COCO's 133).
  config = tmp_path / 'fine_tune.textproto'
  with open(FIXTURE_CONFIG, encoding='utf-8') as f:
    config.write_text(f.read().replace(
        'dataset: "coco_panoptic"',
        f'categories_json: "{synthetic_records["CATEGORIES_JSON"]}"'))
  data = [f'--override={split}_dataset_options.{field}={value}'
          for split in ('train', 'eval') for field, value in (
              ('file_pattern', synthetic_records[
                  'TRAIN_SET' if split == 'train' else 'VAL_SET']),
              ('crop_size', '65,65'), ('min_resize_value', 65),
              ('max_resize_value', 65), ('batch_size', 2))]
  flags = [f'--config_file={config}',
           f'--model_dir={tmp_path / "run"}', '--mode=train', *data,
           f'--override=model_options.initial_checkpoint={imported}',
           '--override=model_options.restore_scope=WHOLE_MODEL',
           '--override=trainer_options.solver_options.'
           'training_number_of_steps=2',
           '--override=trainer_options.solver_options.warmup_steps=1',
           '--override=trainer_options.steps_per_loop=2',
           '--override=trainer_options.save_checkpoints_steps=2',
           '--override=trainer_options.save_summaries_steps=2']
  assert train_main.main(flags) == 0
  # cmt-train prints its progress on stdout, warnings (what the warm start
  # skipped) on stderr.
  captured = capsys.readouterr()
  skipped = {m.group(1) for m in re.finditer(
      r'initial_checkpoint: skipped (\S+)', captured.err)}
  assert skipped == CLASS_DEPENDENT
  assert 'not in the checkpoint' not in captured.out + captured.err
  printed = captured.out
  losses = re.findall(r'step 2/2 \| loss ([-+.\deE]+)', printed)
  assert losses and np.isfinite(float(losses[-1]))


def test_import_refuses_a_mismatch_and_a_full_output_dir(deeplab2_fixtures,
                                                         tmp_path, capsys):
  # A config of another width: the first shapes that differ are named.
  assert _import(deeplab2_fixtures, tmp_path / 'wide',
                 '--override=model_options.backbone.stem_width_multiplier='
                 '0.125') == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and 'shape mismatch' in error[0]
  assert ('model/encoders/0/backbone/stem/_convs/0/_conv/kernel' in error[0]
          and 'encoder/_stem/_conv1_bn_act/_conv/kernel' in error[0])
  assert not (tmp_path / 'wide').exists()
  assert not list(tmp_path.iterdir())  # nothing half-written

  occupied = tmp_path / 'occupied'
  occupied.mkdir()
  (occupied / 'mine.txt').write_text('keep')
  assert _import(deeplab2_fixtures, occupied) == 1
  assert '--overwrite' in capsys.readouterr().err
  assert (occupied / 'mine.txt').read_text() == 'keep'

  assert import_deeplab2_main.main([
      f'--deeplab2_checkpoint={tmp_path / "nothing"}',
      f'--config_file={FIXTURE_CONFIG}',
      f'--output_dir={tmp_path / "out"}']) == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and 'nothing' in error[0]

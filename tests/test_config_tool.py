"""The `cmt-config` console script, run as a user would."""

import pathlib
import shutil
import subprocess
import sys

from cmt.tools import config as config_tool

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / 'configs'


def run_script(*args):
  executable = shutil.which('cmt-config') or shutil.which(
      'cmt-config', path=str(pathlib.Path(sys.executable).parent))
  assert executable, 'cmt-config is not installed as a console script'
  return subprocess.run([executable, *args], capture_output=True, text=True,
                        timeout=120, check=False)


def test_validate_typo_prints_file_line_column_and_fails(tmp_path):
  bad = tmp_path / 'typo.textproto'
  bad.write_text('experiment_name: "x"\ntrainer_options {\n'
                 '  solver_options { base_learning_rat: 0.1 }\n}\n')
  result = run_script('validate', str(bad))
  assert result.returncode != 0
  assert f'{bad}:3:' in result.stderr
  assert 'base_learning_rat' in result.stderr


def test_validate_reports_each_file_and_placeholders(tmp_path, capsys):
  good = tmp_path / 'good.textproto'
  good.write_text(
      'train_dataset_options { dataset: "coco_panoptic" '
      'file_pattern: "${TRAIN_SET}" crop_size: [65, 65] }\n'
      'eval_dataset_options { dataset: "coco_panoptic" '
      'file_pattern: "${TRAIN_SET}" crop_size: [65, 65] }\n')
  bad = tmp_path / 'bad.textproto'
  bad.write_text('model_options { clustering { coord_conv: true } }\n')
  assert config_tool.main(['validate', str(good), str(bad)]) == 1
  out, err = capsys.readouterr()
  assert f'{good}: OK (placeholders to fill at launch: TRAIN_SET)' in out
  assert 'coord_conv = True: needs reference_mask' in err


def test_print_resolves_params_and_overrides(tmp_path, capsys):
  path = tmp_path / 'exp.textproto'
  path.write_text('experiment_name: "${NAME}"\n')
  assert config_tool.main(['print', str(path), '--param', 'NAME=demo',
                           '--override', 'model_options.backbone.'
                           'output_stride=32']) == 0
  out = capsys.readouterr().out
  assert 'experiment_name: "demo"' in out
  assert 'output_stride: 32' in out


def _error_of(tmp_path, capsys, text: str, subcommand: str) -> str:
  """stderr of `cmt-config SUBCOMMAND` on a config of `text`, which fails."""
  path = tmp_path / 'exp.textproto'
  path.write_text(text)
  assert config_tool.main([subcommand, str(path)]) == 1
  return capsys.readouterr().err


def test_print_error_exits_nonzero(tmp_path, capsys):
  assert '${NAME}' in _error_of(tmp_path, capsys,
                                'experiment_name: "${NAME}"\n', 'print')


def test_params_reports_a_bad_config(tmp_path, capsys):
  assert 'output_stride' in _error_of(
      tmp_path, capsys, 'model_options { backbone { output_stride: 8 } }\n',
      'params')


def test_every_repository_config_validates(capsys):
  files = sorted(str(p) for p in CONFIGS.rglob('*.textproto'))
  assert files, f'no configs under {CONFIGS}'
  assert config_tool.main(['validate', *files]) == 0, capsys.readouterr().err

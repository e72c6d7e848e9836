"""The rule of `cmt.cli` itself: the debug switch, internal errors,
TensorFlow's messages and logging, fast `--help` (the per-script table of
bad inputs is tests/test_cli_rule.py)."""

import os
import pathlib
import subprocess
import sys

from cmt import cli
from cmt.tools import commands
from tests.conftest import REPO_ROOT


def test_debug_variable_shows_the_traceback(tmp_path):
  typo = tmp_path / 'typo.textproto'
  typo.write_text('trainer_options { solver_options { base_learning_rat: 1 '
                  '} }\n')
  script = pathlib.Path(sys.executable).parent / 'cmt-config'
  env = dict(os.environ, **{cli.DEBUG_ENV: '1'})
  result = subprocess.run([str(script), 'validate', str(typo)],
                          capture_output=True, text=True, env=env, check=False)
  assert result.returncode == 1
  assert 'Traceback (most recent call last)' in result.stderr
  assert 'base_learning_rat' in result.stderr


def test_a_bug_is_one_line_that_says_so(capsys, monkeypatch):
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)

  @cli.command('cmt-demo-bug')
  def main(argv=None):
    del argv
    return {}['missing']

  assert main([]) == cli.EXIT_ERROR
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'Traceback' not in err
  assert 'internal error (KeyError' in err and cli.DEBUG_ENV in err


def test_tensorflow_error_is_its_first_line(monkeypatch):
  class OpError(Exception):
    def __init__(self, message):
      super().__init__(message)
      self.message = message
  OpError.__module__ = 'tensorflow.python.framework.errors_impl'
  line = cli.error_line('cmt-x', OpError('bad shape [3]\n\t [[{{node a}}]]\n'
                                         + 'x' * 5000))
  assert line == 'cmt-x: error: bad shape [3]'


def test_help_is_fast_and_imports_no_tensorflow():
  """--help of every script answers without importing TensorFlow."""
  modules = {name: commands.module_of(name) for name in commands.COMMANDS}
  code = ('import importlib, io, contextlib, sys\n'
          f'for name in {sorted(modules.values())!r}:\n'
          '  out = io.StringIO()\n'
          '  with contextlib.redirect_stdout(out):\n'
          '    status = importlib.import_module(name).main(["--help"])\n'
          '  assert status == 0 and "usage:" in out.getvalue(), name\n'
          'print(sorted(m for m in sys.modules if m.split(".")[0] in '
          '("tensorflow", "tf_keras", "orbit")))\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True, cwd=REPO_ROOT)
  assert result.stdout.strip() == '[]', result.stdout


def test_tensorflow_logging_is_quiet_unless_debugging(monkeypatch):
  monkeypatch.delenv('TF_CPP_MIN_LOG_LEVEL', raising=False)
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  cli.quiet_tensorflow()
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '3'
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '0')
  cli.quiet_tensorflow()  # the user's own setting wins
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '0'


def test_cmt_train_help_flags(capsys):
  """-h, --help, --helpshort and --helpfull all print help."""
  from cmt.tools import train as train_main  # pylint: disable=g-import-not-at-top
  for flag in ('-h', '--help', '--helpshort', '--helpfull'):
    assert train_main.main([flag]) == 0
    out = capsys.readouterr()
    assert '--config_file' in out.out and '--model_dir' in out.out
    assert 'Unknown' not in out.err and not out.err

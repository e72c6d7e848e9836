"""The console scripts, listed once: setup.py installs them (it runs this
file on its own, so it imports nothing) and the tests check each of them.

`cmt-foo-bar` is `main(argv)` / `run()` of `cmt/tools/foo_bar.py`.
"""

COMMANDS = (
    'cmt-config',
    'cmt-synthetic-data',
    'cmt-build-data',
    'cmt-train',
    'cmt-evaluate',
    'cmt-export',
    'cmt-predict',
    'cmt-visualize',
    'cmt-paper-tables',
    'cmt-import-deeplab2',
    'cmt-ablate',
    'cmt-demo',
)


def module_of(command: str) -> str:
  """'cmt-foo-bar' -> 'cmt.tools.foo_bar'."""
  return 'cmt.tools.' + command[len('cmt-'):].replace('-', '_')


def console_scripts() -> list:
  """setup.py's entry points: 'cmt-foo-bar=cmt.tools.foo_bar:run'."""
  return [f'{command}={module_of(command)}:run' for command in COMMANDS]

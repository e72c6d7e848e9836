"""The rule every `cmt-*` console script follows, enforced in one place.

A user's mistake or a bad file ends a command with ONE line on stderr,

    cmt-foo: error: <file, field or value>: <what is wrong / what is right>

and a non-zero exit status (1; 2 for malformed arguments; 130 when
interrupted), without a Python or TensorFlow traceback. Set the environment
variable `CMT_DEBUG=1` to get the full traceback (and TensorFlow's own
logging) instead.

A command is a `main(argv) -> int` that parses with `cli.ArgumentParser`,
is decorated with `cli.command(prog)` and simply raises on bad input
(ValueError and its subclasses such as `config.ConfigError`, OSError such
as FileNotFoundError / FileExistsError, a TensorFlow `OpError`); the
decorator does the rest. TensorFlow is never
imported here: a command imports it after parsing, so `--help` is fast. A
new command (setup.py `cmt-foo=cmt.foo_main:run`) is:

    from cmt import cli

    @cli.command('cmt-foo')
    def main(argv=None) -> int:
      parser = cli.ArgumentParser(prog='cmt-foo', description=__doc__)
      parser.add_argument('--input', required=True)
      args = parser.parse_args(argv)
      import tensorflow as tf  # only now
      ...                      # raise ValueError(f'--input={...}: ...')
      return 0

    run = cli.entry_point(main)

Outputs are written with `cmt.atomic_files` (temporary name, then rename;
nothing existing replaced unless the user passed --overwrite), inputs read
with `cmt.file_io`: both take local paths and URLs (gs://). A flag that a
command can only handle on the local disk says so with
`type=cli.local_path`, which refuses a URL in the one line of a malformed
argument (no local folder named `gs:` is ever made of it).
"""

import argparse
import functools
import os
import sys
import traceback
from typing import Callable, NoReturn, Optional, Sequence

from cmt import file_io

DEBUG_ENV = 'CMT_DEBUG'
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# A message longer than this is cut (TensorFlow's can run to pages).
MAX_MESSAGE_CHARS = 600


def debug_requested() -> bool:
  """True when the user asked for tracebacks (CMT_DEBUG=1)."""
  return os.environ.get(DEBUG_ENV, '').strip().lower() not in (
      '', '0', 'false', 'no')


def quiet_tensorflow() -> None:
  """Keeps TensorFlow's C++ start-up logging off the console (the user's own
  TF_CPP_MIN_LOG_LEVEL wins). Must run before TensorFlow is imported."""
  if not debug_requested():
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


class ArgumentParser(argparse.ArgumentParser):
  """argparse that reports a malformed command line in one line (no usage
  block; `--help` shows it) and exits with status 2. `--help` prints the
  description (a command's module docstring) as written."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
    super().__init__(*args, **kwargs)

  def error(self, message: str) -> NoReturn:
    self.exit(EXIT_USAGE, f'{self.prog}: error: {one_line(message)} '
              f'(see {self.prog} --help)\n')


def local_path(value: str) -> str:
  """argparse `type=` of a path the command reads or writes with local file
  APIs only (PIL, pycocotools, worker processes): a URL is refused."""
  if file_io.is_url(value):
    raise argparse.ArgumentTypeError(
        f'{value}: this command reads and writes local files only, not URLs; '
        'copy the data to the local disk first (gsutil cp -r)')
  return value


def _is_tensorflow_error(error: BaseException) -> bool:
  return type(error).__module__.startswith('tensorflow') and hasattr(
      error, 'message')


def is_user_error(error: BaseException) -> bool:
  """Errors caused by input: bad values, files, data. Anything else is a
  bug in this library and is reported as one."""
  return isinstance(error, (ValueError, OSError)) or _is_tensorflow_error(
      error)


def one_line(text: str) -> str:
  """`text` on one line, cut to MAX_MESSAGE_CHARS."""
  text = ' '.join(part.strip() for part in str(text).splitlines()
                  if part.strip())
  if len(text) > MAX_MESSAGE_CHARS:
    text = text[:MAX_MESSAGE_CHARS - 3] + '...'
  return text


def message_of(error: BaseException) -> str:
  """What `error` says, on one line (a TensorFlow error: its first line;
  the rest is the graph trace)."""
  if _is_tensorflow_error(error):
    lines = str(error.message).strip().splitlines()
    message = lines[0] if lines else type(error).__name__
  elif isinstance(error, OSError) and error.filename and error.strerror:
    message = f'{error.filename}: {error.strerror}'
  else:
    message = str(error) or type(error).__name__
  if not is_user_error(error):
    message = (f'internal error ({type(error).__name__}: {message}); rerun '
               f'with {DEBUG_ENV}=1 for the traceback and report it')
  return one_line(message)


def error_line(prog: str, error: BaseException) -> str:
  """The one line printed for `error`."""
  message = message_of(error)
  prefix = f'{prog}: error: '
  if message.startswith(prefix):
    return message
  if message.startswith(f'{prog}: '):
    message = message[len(prog) + 2:]
  return prefix + message


def report(prog: str, error: BaseException, stderr=None) -> str:
  """Prints the one line for `error` (after its traceback with CMT_DEBUG=1)
  and returns it: for commands that go on after a failed item (one bad
  file among many)."""
  stderr = stderr or sys.stderr
  if debug_requested():
    traceback.print_exception(error, file=stderr)
  line = error_line(prog, error)
  print(line, file=stderr)
  return line


def call(main: Callable[[Optional[Sequence[str]]], int], prog: str,
         argv: Optional[Sequence[str]] = None, stderr=None) -> int:
  """Runs `main(argv)` under the rule; returns the exit status."""
  stderr = stderr or sys.stderr
  quiet_tensorflow()
  debug = debug_requested()
  try:
    status = main(argv)
  except SystemExit as exit_request:  # argparse: --help, usage errors
    code = exit_request.code
    if code is None or isinstance(code, int):
      return code or 0
    print(f'{prog}: error: {one_line(code)}', file=stderr)
    return EXIT_ERROR
  except KeyboardInterrupt:
    if debug:
      raise
    print(f'{prog}: interrupted', file=stderr)
    return EXIT_INTERRUPTED
  except Exception as error:  # pylint: disable=broad-except
    report(prog, error, stderr)
    return EXIT_ERROR
  return int(status or 0)


def command(prog: str):
  """Decorator: a raising `main(argv, ...)` -> one that follows the rule
  (`call`) and returns the exit status. Tests call it in-process and see
  exactly what the console script prints."""

  def decorate(main):
    @functools.wraps(main)
    def wrapped(argv: Optional[Sequence[str]] = None, *args, **kwargs) -> int:
      return call(lambda arguments: main(arguments, *args, **kwargs), prog,
                  argv)

    wrapped.prog = prog
    return wrapped

  return decorate


def entry_point(main: Callable[[], int]) -> Callable[[], NoReturn]:
  """The `run()` a setup.py console script names: `sys.exit(main())`, for a
  `main` decorated with `command`."""

  def run() -> NoReturn:
    sys.exit(main())

  run.__doc__ = f'Console entry point of {getattr(main, "prog", main)}.'
  return run

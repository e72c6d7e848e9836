"""Loads experiment textprotos into `ExperimentOptions`.

A config file may contain `${NAME}` placeholders (dataset paths, checkpoint
paths); they are filled from explicit parameters first, then from the
environment. `--override=field.path=value` flags are applied on top of the
parsed file. Every error names the file, line and column, the placeholder,
or the override at fault.
"""

import argparse
import dataclasses
import os
import re
from typing import Iterable, Mapping, Optional

from google.protobuf import descriptor
from google.protobuf import text_format

from cmt import config_checks
from cmt import file_io
from cmt.protos import config_pb2

_PLACEHOLDER = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}')
_PATH_PART = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$')


class ConfigError(ValueError):
  """A config that cannot be loaded; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class Placeholder:
  name: str
  line: int
  column: int


def find_placeholders(text: str) -> list[Placeholder]:
  """Every `${NAME}` in `text` with its 1-based line and column."""
  found = []
  for line_number, line in enumerate(text.splitlines(), start=1):
    if line.lstrip().startswith('#'):
      continue
    for match in _PLACEHOLDER.finditer(line):
      found.append(Placeholder(match.group(1), line_number, match.start() + 1))
  return found


def fill_placeholders(text: str, path: str,
                      params: Optional[Mapping[str, str]] = None,
                      environ: Optional[Mapping[str, str]] = None) -> str:
  """Replaces `${NAME}` from `params`, then `environ`; errors if any is left."""
  params = dict(params or {})
  environ = os.environ if environ is None else environ
  missing = [p for p in find_placeholders(text)
             if p.name not in params and p.name not in environ]
  if missing:
    where = ', '.join(f'${{{p.name}}} at {path}:{p.line}:{p.column}'
                      for p in missing)
    raise ConfigError(
        f'unfilled placeholder(s): {where}; pass --param NAME=VALUE or set '
        'the environment variable')

  def substitute(match):
    name = match.group(1)
    return params[name] if name in params else environ[name]

  lines = []
  for line in text.splitlines(keepends=True):
    lines.append(line if line.lstrip().startswith('#')
                 else _PLACEHOLDER.sub(substitute, line))
  return ''.join(lines)


def _inside_quotes(line: str, column: int) -> bool:
  """Whether 1-based `column` of `line` lies inside a quoted string."""
  quote, escaped = None, False
  for char in line[:column - 1]:
    if escaped:
      escaped = False
    elif char == '\\':
      escaped = True
    elif quote and char == quote:
      quote = None
    elif not quote and char in '"\'':
      quote = char
  return quote is not None


def template_params(text: str, path: str,
                    params: Optional[Mapping[str, str]] = None,
                    environ: Optional[Mapping[str, str]] = None
                    ) -> dict[str, str]:
  """Values to check a config template with (`cmt-config validate`): the
  given params, then the environment, as at launch; a placeholder with
  neither stands for itself where it is a string ("${TRAIN_SET}"), while a
  bare one (a number or enum, `batch_size: ${BS}`) needs a value to be
  checked at all."""
  params = dict(params or {})
  environ = os.environ if environ is None else environ
  lines = text.splitlines()
  bare = []
  for placeholder in find_placeholders(text):
    name = placeholder.name
    if name in params or name in environ:
      continue
    if _inside_quotes(lines[placeholder.line - 1], placeholder.column):
      params[name] = f'${{{name}}}'
    else:
      bare.append(placeholder)
  if bare:
    where = ', '.join(f'${{{p.name}}} at {path}:{p.line}:{p.column}'
                      for p in bare)
    names = sorted({p.name for p in bare})
    raise ConfigError(
        f'{path}: placeholder(s) {where} stand for a number or name, which '
        f'can only be checked with a value: pass --param {names[0]}=VALUE '
        '(as at launch) or set the environment variable')
  return params


def parse_text(text: str, path: str) -> config_pb2.ExperimentOptions:
  """Parses textproto `text`; a syntax or field error names path:line:col."""
  options = config_pb2.ExperimentOptions()
  try:
    text_format.Parse(text, options)
  except text_format.ParseError as error:
    message = str(error)
    # The library prefixes 'line:column : '; we print it in compiler style.
    message = re.sub(r'^\d+:\d+\s*:\s*', '', message)
    line, column = error.GetLine(), error.GetColumn()
    location = f'{path}:{line}:{column}' if line else path
    raise ConfigError(f'{location}: {message}') from None
  return options


def _resolve(message, path: str, override: str):
  """Walks `a.b[1].c` to (parent message, field descriptor of `c`)."""
  parts = path.split('.')
  for index, part in enumerate(parts):
    match = _PATH_PART.match(part)
    if not match:
      raise ConfigError(f'override {override!r}: malformed field path '
                        f'{path!r}')
    name, position = match.group(1), match.group(2)
    field = message.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
      known = ', '.join(sorted(message.DESCRIPTOR.fields_by_name))
      raise ConfigError(
          f'override {override!r}: {message.DESCRIPTOR.full_name} has no '
          f'field {name!r} (fields: {known})')
    last = index == len(parts) - 1
    is_message = field.type == descriptor.FieldDescriptor.TYPE_MESSAGE
    is_repeated = field.is_repeated
    if last:
      if is_message:
        raise ConfigError(f'override {override!r}: {path!r} is a message; '
                          'override one of its fields')
      if position is not None:
        raise ConfigError(f'override {override!r}: give repeated scalar '
                          f'{name!r} as a comma-separated list, not by index')
      return message, field
    if not is_message:
      raise ConfigError(f'override {override!r}: {name!r} is not a message')
    if is_repeated:
      if position is None:
        raise ConfigError(f'override {override!r}: {name!r} is repeated; '
                          f'index it as {name}[i]')
      items = getattr(message, name)
      position = int(position)
      if position > len(items):
        raise ConfigError(f'override {override!r}: {name}[{position}] is past '
                          f'the end ({len(items)} present)')
      message = items[position] if position < len(items) else items.add()
    else:
      if position is not None:
        raise ConfigError(f'override {override!r}: {name!r} is not repeated')
      message = getattr(message, name)
  raise AssertionError('unreachable')


def _scalar_text(field, value: str) -> str:
  if field.type == descriptor.FieldDescriptor.TYPE_STRING:
    return '"' + value.replace('\\', '\\\\').replace('"', '\\"') + '"'
  return value


def apply_override(options: config_pb2.ExperimentOptions, override: str):
  """Applies one `field.path=value` (lists comma-separated) in place."""
  if '=' not in override:
    raise ConfigError(f'override {override!r}: expected field.path=value')
  path, value = (s.strip() for s in override.split('=', 1))
  parent, field = _resolve(options, path, override)
  repeated = field.is_repeated
  values = [v.strip() for v in value.split(',')] if repeated else [value]
  if repeated and value == '':
    values = []
  scratch = type(parent)()
  try:
    for item in values:
      text_format.Merge(f'{field.name}: {_scalar_text(field, item)}', scratch)
  except text_format.ParseError as error:
    reason = re.sub(r'^\d+:\d+\s*:\s*', '', str(error))
    raise ConfigError(f'override {override!r}: bad value for {path}: '
                      f'{reason}') from None
  if repeated:
    parent.ClearField(field.name)
    getattr(parent, field.name).extend(getattr(scratch, field.name))
  else:
    setattr(parent, field.name, getattr(scratch, field.name))


def load_config(path: str,
                params: Optional[Mapping[str, str]] = None,
                overrides: Iterable[str] = (),
                environ: Optional[Mapping[str, str]] = None,
                check: bool = True,
                purposes: Iterable[str] = ()) -> config_pb2.ExperimentOptions:
  """Reads, fills, parses, overrides and (by default) checks a config file
  for `purposes` (`cmt.config_checks`; none: the parts present)."""
  text = read_text(path)
  text = fill_placeholders(text, path, params, environ)
  options = parse_text(text, path)
  for override in overrides:
    apply_override(options, override)
  if check:
    require_runnable(options, purposes, path)
  return options


def unset_placeholder_hint(names: Iterable[str]) -> str:
  """The note added to an error while placeholders were left unset."""
  return (f' (placeholders left unset: {", ".join(names)}; pass --param '
          'NAME=VALUE or set the environment variable for any this job '
          'needs)')


def load_config_leaving_unset(
    path: str, params: Optional[Mapping[str, str]] = None,
    overrides: Iterable[str] = (), environ: Optional[Mapping[str, str]] = None,
    check: bool = True, purposes: Iterable[str] = ()
) -> tuple[config_pb2.ExperimentOptions, list[str]]:
  """`load_config` for a job that reads no data path (validate, parameter
  counts, paper tables, export, predict): each string `${NAME}` that neither
  `params` nor the environment sets is left as its own text `${NAME}`
  (`template_params`; a bare numeric one needs a value).

  Returns (options, the names left unset). An error while loading lists
  them: one may be a value the job does need (a categories_json).
  """
  filled = template_params(read_text(path), path, params, environ)
  unset = sorted(name for name, value in filled.items()
                 if value == f'${{{name}}}')
  try:
    return load_config(path, filled, overrides, environ, check,
                       purposes), unset
  except ConfigError as error:
    if not unset:
      raise
    raise ConfigError(f'{error}{unset_placeholder_hint(unset)}') from None


def read_text(path: str) -> str:
  """The text of config file `path` (local or a URL, `cmt.file_io`);
  ConfigError if unreadable or not text."""
  try:
    return file_io.read_text(path)
  except OSError as error:
    raise ConfigError(f'{path}: cannot read config: {error.strerror}') from None
  except UnicodeDecodeError as error:
    raise ConfigError(f'{path}: not a text config (byte {error.start} is not '
                      'UTF-8); expected a textproto file') from None


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
  """`NAME=VALUE` strings (from --param flags) into a dict."""
  params = {}
  for pair in pairs:
    if '=' not in pair:
      raise ConfigError(f'--param {pair!r}: expected NAME=VALUE')
    name, value = pair.split('=', 1)
    params[name.strip()] = value
  return params


def check_options(options: config_pb2.ExperimentOptions,
                  purposes: Iterable[str] = ()) -> list[str]:
  """Readable problems of `options` for `purposes` (`cmt.config_checks`)."""
  return config_checks.check_options(options, purposes)


def require_runnable(options: config_pb2.ExperimentOptions,
                     purposes: Iterable[str] = (), source: str = ''):
  """Raises ConfigError (one line: source, then every problem) unless
  `options` can run for `purposes`; the build path calls this before any
  TensorFlow graph exists."""
  problems = check_options(options, purposes)
  if problems:
    prefix = f'{source}: ' if source else ''
    raise ConfigError(prefix + '; '.join(problems))


def add_config_flags(parser: argparse.ArgumentParser,
                     unset_paths_allowed: bool = False):
  """--param / --override: what fills and changes an experiment config
  (`load_config`); every command and subprocess that loads a config
  declares them here."""
  parser.add_argument(
      '--param', action='append', default=[], metavar='NAME=VALUE',
      help='value of a ${NAME} placeholder of the config (else the '
      'environment' + ('; data paths may stay unset)' if unset_paths_allowed
                       else ')'))
  parser.add_argument('--override', action='append', default=[],
                      metavar='FIELD=VALUE',
                      help='field.path=value, applied on top of the config')

"""Loads experiment textprotos into `ExperimentOptions`.

A config file may contain `${NAME}` placeholders (dataset paths, checkpoint
paths); they are filled from explicit parameters first, then from the
environment. `--override=field.path=value` flags are applied on top of the
parsed file. Every error names the file, line and column, the placeholder,
or the override at fault.
"""

import dataclasses
import os
import re
from typing import Iterable, Mapping, Optional

from google.protobuf import descriptor
from google.protobuf import text_format

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
                check: bool = True) -> config_pb2.ExperimentOptions:
  """Reads, fills, parses, overrides and (by default) checks a config file."""
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except OSError as error:
    raise ConfigError(f'{path}: cannot read config: {error.strerror}') from None
  text = fill_placeholders(text, path, params, environ)
  options = parse_text(text, path)
  for override in overrides:
    apply_override(options, override)
  if check:
    problems = check_options(options)
    if problems:
      raise ConfigError(f'{path}: ' + '; '.join(problems))
  return options


def unset_placeholder_hint(names: Iterable[str]) -> str:
  """The note added to an error while placeholders were left unset."""
  return (f' (placeholders left unset: {", ".join(names)}; pass --param '
          'NAME=VALUE or set the environment variable for any this job '
          'needs)')


def load_config_leaving_unset(
    path: str, params: Optional[Mapping[str, str]] = None,
    overrides: Iterable[str] = (), environ: Optional[Mapping[str, str]] = None,
    check: bool = True) -> tuple[config_pb2.ExperimentOptions, list[str]]:
  """`load_config` for a job that reads no data path (validate, parameter
  counts, paper tables, export, predict): each `${NAME}` that neither
  `params` nor the environment sets is left as its own text `${NAME}`.

  Returns (options, the names left unset). An error while loading lists
  them: one may be a value the job does need (a categories_json).
  """
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except OSError as error:
    raise ConfigError(f'{path}: cannot read config: {error.strerror}') from None
  except UnicodeDecodeError:
    raise ConfigError(f'{path}: not a text file (not UTF-8)') from None
  environ = os.environ if environ is None else environ
  filled = dict(params or {})
  unset = sorted({p.name for p in find_placeholders(text)
                  if p.name not in filled and p.name not in environ})
  filled.update({name: f'${{{name}}}' for name in unset})
  try:
    return load_config(path, filled, overrides, environ, check), unset
  except ConfigError as error:
    if not unset:
      raise
    raise ConfigError(f'{error}{unset_placeholder_hint(unset)}') from None


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
  """`NAME=VALUE` strings (from --param flags) into a dict."""
  params = {}
  for pair in pairs:
    if '=' not in pair:
      raise ConfigError(f'--param {pair!r}: expected NAME=VALUE')
    name, value = pair.split('=', 1)
    params[name.strip()] = value
  return params


def check_options(options: config_pb2.ExperimentOptions) -> list[str]:
  """Checks that cross fields; returns readable problems (empty if fine)."""
  problems = []
  model = options.model_options
  if model.backbone.output_stride not in (16, 32):
    problems.append('model_options.backbone.output_stride must be 16 or 32, '
                    f'got {model.backbone.output_stride}')
  if not 0.0 <= model.backbone.drop_path_rate < 1.0:
    problems.append('model_options.backbone.drop_path_rate must be in [0, 1), '
                    f'got {model.backbone.drop_path_rate}')
  for i, stage in enumerate(model.decoder.transformer_stages):
    if stage.backbone_stage not in (4, 5):
      problems.append(f'model_options.decoder.transformer_stages[{i}]'
                      '.backbone_stage must be 4 or 5, got '
                      f'{stage.backbone_stage}')
    if stage.num_blocks < 1:
      problems.append(f'model_options.decoder.transformer_stages[{i}]'
                      f'.num_blocks must be >= 1, got {stage.num_blocks}')
  clustering = model.clustering
  if clustering.coord_conv and not clustering.reference_mask:
    problems.append('model_options.clustering.coord_conv needs '
                    'reference_mask: the centers are concatenated with r^c '
                    '(Eq. 11)')
  if clustering.num_reference_points < 1:
    problems.append('model_options.clustering.num_reference_points must be '
                    f'>= 1, got {clustering.num_reference_points}')
  if model.transformer.num_cluster_centers < 1:
    problems.append('model_options.transformer.num_cluster_centers must be '
                    f'>= 1, got {model.transformer.num_cluster_centers}')
  if model.transformer.memory_channels % model.transformer.num_heads:
    problems.append('model_options.transformer.memory_channels '
                    f'({model.transformer.memory_channels}) must divide by '
                    f'num_heads ({model.transformer.num_heads})')
  problems += _check_deeplab2_counterparts(model)
  for name in ('train_dataset_options', 'eval_dataset_options'):
    if not options.HasField(name):
      continue
    dataset = getattr(options, name)
    if len(dataset.crop_size) not in (0, 2):
      problems.append(f'{name}.crop_size needs 2 values [height, width], got '
                      f'{list(dataset.crop_size)}')
    if dataset.batch_size < 1:
      problems.append(f'{name}.batch_size must be >= 1, got '
                      f'{dataset.batch_size}')
    if dataset.dataset and dataset.categories_json:
      problems.append(f'{name}: set dataset (built-in) or categories_json '
                      '(custom), not both')
    if not dataset.dataset and not dataset.categories_json:
      problems.append(f'{name}: set dataset (e.g. "coco_panoptic") or '
                      'categories_json')
  solver = options.trainer_options.solver_options
  if solver.training_number_of_steps < 1:
    problems.append('trainer_options.solver_options.training_number_of_steps '
                    f'must be >= 1, got {solver.training_number_of_steps}')
  if solver.warmup_steps < 0:
    problems.append('trainer_options.solver_options.warmup_steps must be '
                    f'>= 0, got {solver.warmup_steps}')
  return problems


def _check_deeplab2_counterparts(model) -> list[str]:
  """The fields that mirror DeepLab2's multipliers and semantic decoder."""
  problems = []
  backbone = model.backbone
  if backbone.HasField('stem_width_multiplier') and (
      backbone.stem_width_multiplier <= 0):
    problems.append('model_options.backbone.stem_width_multiplier must be '
                    f'> 0, got {backbone.stem_width_multiplier:g}')
  counts = list(backbone.num_blocks) or (
      [3, 4, 24, 3] if backbone.name == backbone.AXIAL_RESNET_104
      else [3, 4, 6, 3])
  if min(int(c * backbone.layer_multiplier) for c in counts) < 1:
    problems.append('model_options.backbone.layer_multiplier '
                    f'{backbone.layer_multiplier:g} leaves a stage of '
                    f'{counts} without blocks')
  rates = list(model.heads.aspp_atrous_rates)
  if rates and (len(rates) != 3 or min(rates) < 1):
    problems.append('model_options.heads.aspp_atrous_rates must list 3 '
                    f'positive rates (or none: 6, 12, 18), got {rates}')
  return problems

"""The READMEs and docs/*.md name only files and modules that exist.

What counts as a reference (the rest of the prose is left alone):
* a repo-relative path, backticked or not, whose first folder is a folder
  of the repository (`cmt/...`, `trainer/...`, `docs/...`); a glob must
  match at least one file;
* a backticked file name with a source ending (`model.proto`), which must
  exist somewhere in the tree;
* a backticked dotted name under `cmt` (`cmt.trainer.eval_loop`,
  `cmt.data.eval_inputs`), resolved as setup.py installs the folders; what
  follows the module must be defined in it (`def`, `class` or `NAME =`),
  and `cmt.SomeMessage` must be a message of protos/*.proto;
* a name said to live in a file: "`name` in `path.py`" or
  "`path.py` (`name`)", which the file must define.
Fenced ```text blocks (example output) and generated outputs (demo_output/)
are not references.
"""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCS = ('README.md', 'docs/ARCHITECTURE.md', 'docs/MODEL_ZOO.md',
        'benchmarks/README.md')
# Top-level folder of each installed package (setup.py PACKAGE_ROOTS).
PACKAGE_FOLDERS = {'trainer': 'trainer', 'evaluation': 'evaluation',
                   'protos': 'protos', 'configs': 'configs'}
GENERATED = ('demo_output/',)
SOURCE_ENDINGS = ('.py', '.proto', '.textproto', '.md', '.toml', '.cfg')

_TOP_FOLDERS = sorted(p.name for p in REPO.iterdir()
                      if p.is_dir() and not p.name.startswith('.'))
_BARE_PATH = re.compile(r'(?<![\w./:-])((?:%s)/[\w./*-]*)'
                        % '|'.join(map(re.escape, _TOP_FOLDERS)))
_BACKTICKED = re.compile(r'`([^`\n]+)`')
_DOTTED = re.compile(r'^cmt(?:\.\w+)+$')
_NAMES_IN_FILE = re.compile(r'((?:`[\w.]+`(?:,? (?:and )?)?)+) in `([\w/]+\.py)`')
_FILE_NAME = re.compile(r'`([\w/]+\.py)` \(`([\w.]+)`\)')


def _prose(text: str) -> str:
  """`text` without fenced ```text blocks (example output)."""
  return re.sub(r'^```text\n.*?^```', '', text, flags=re.M | re.S)


def references(text: str) -> set[str]:
  """Every path, file name and dotted module name the text refers to."""
  text = _prose(text)
  found = {m.rstrip('.,:;') for m in _BARE_PATH.findall(text)}
  for span in _BACKTICKED.findall(text):
    for word in span.split():
      word = word.strip('.,:;()"\'')
      if _DOTTED.match(word):
        found.add(word)
      elif '/' not in word and word.endswith(SOURCE_ENDINGS):
        found.add(word)
  for names, path in _NAMES_IN_FILE.findall(text):
    found.update(f'{path}::{name}' for name in re.findall(r'`([\w.]+)`', names))
  found.update(f'{path}::{name}' for path, name in _FILE_NAME.findall(text))
  return {f for f in found if f and not f.startswith(GENERATED)}


def _defines(path: pathlib.Path, name: str) -> bool:
  pattern = rf'^\s*(def {name}\b|class {name}\b|{name}\s*[:=])'
  return re.search(pattern, path.read_text(encoding='utf-8'), re.M) is not None


def _module_problem(dotted: str) -> str:
  parts = dotted.split('.')[1:]
  if parts[0][:1].isupper():  # a proto message: cmt.ExperimentOptions
    protos = ''.join(p.read_text(encoding='utf-8')
                     for p in (REPO / 'protos').glob('*.proto'))
    found = re.search(rf'^\s*(message|enum) {parts[0]}\b', protos, re.M)
    return '' if found else 'no such proto message'
  folder = REPO / PACKAGE_FOLDERS.get(parts[0], 'cmt')
  rest = parts[1:] if parts[0] in PACKAGE_FOLDERS else parts
  module = folder / '__init__.py'
  while rest and ((folder / rest[0]).is_dir() or
                  (folder / f'{rest[0]}.py').is_file()):
    if (folder / rest[0]).is_dir():
      folder = folder / rest[0]
      module = folder / '__init__.py'
    else:
      module = folder / f'{rest[0]}.py'
    rest = rest[1:]
  if not rest:
    return ''
  if module.is_file() and _defines(module, rest[0]):
    return ''
  return f'{rest[0]} is not defined in {module.relative_to(REPO)}'


def problem(reference: str) -> str:
  """'' when `reference` exists, else what is wrong."""
  if '::' in reference:
    path, name = reference.split('::')
    if not (REPO / path).is_file():
      return 'no such file'
    defined = _defines(REPO / path, name.split('.')[0])
    return '' if defined else f'{name} is not defined there'
  if _DOTTED.match(reference):
    return _module_problem(reference)
  if '/' not in reference:
    hits = [p for p in REPO.rglob(reference)
            if '.venv' not in p.parts and '.git' not in p.parts]
    return '' if hits else 'no file of this name in the repository'
  if any(c in reference for c in '*?['):
    return '' if list(REPO.glob(reference.rstrip('/'))) else 'glob matches nothing'
  return '' if (REPO / reference).exists() else 'does not exist'


@pytest.mark.parametrize('doc', DOCS)
def test_every_path_the_doc_names_exists(doc):
  text = (REPO / doc).read_text(encoding='utf-8')
  named = references(text)
  assert len(named) > 10, f'{doc}: the extraction found only {named}'
  missing = {ref: problem(ref) for ref in sorted(named) if problem(ref)}
  assert not missing, f'{doc} names what does not exist: {missing}'


def test_the_extraction_sees_stale_names():
  text = ('The modules `cmt/protos/*_pb2.py` and trainer/evaluator.py, '
          '`cmt.trainer.evaluator`, `cmt.model.decoder.StrideFourDecoder`, '
          '`cmt.NoSuchOptions` and `matching.py`; `_solve` in '
          '`cmt/model/loss/hungarian.py`, `cmt/export.py` (`resolve_checkpoint`).\n'
          '```text\nerror: configs/my_experiment.textproto:3:21\n```\n'
          'Outputs go to demo_output/ (`demo_output/predictions`).')
  named = references(text)
  assert named == {'cmt/protos/*_pb2.py', 'trainer/evaluator.py',
                   'cmt.trainer.evaluator',
                   'cmt.model.decoder.StrideFourDecoder', 'cmt.NoSuchOptions',
                   'matching.py', 'cmt/model/loss/hungarian.py',
                   'cmt/model/loss/hungarian.py::_solve', 'cmt/export.py',
                   'cmt/export.py::resolve_checkpoint'}
  existing = {'cmt/model/loss/hungarian.py', 'cmt/export.py',
              'cmt/model/loss/hungarian.py::_solve'}
  assert {ref for ref in named if not problem(ref)} == existing

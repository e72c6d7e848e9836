"""tools/install_tpu_vm.sh's lists cover what the installed packages require.

The TPU VM install resolves tools/tpu_vm_requirements.txt and installs the
packages of tools/tpu_vm_no_deps.txt (and cmt-deeplab) without their
dependencies, so every requirement those declare, other than the
`tensorflow` distribution and each other, must be in the first list. Read
from the metadata of this environment (the `make` install: same versions).
"""

import importlib.metadata
import pathlib
import re

from packaging.requirements import Requirement

TOOLS = pathlib.Path(__file__).resolve().parent.parent / 'tools'
TENSORFLOW = 'tensorflow'


def _name(text: str) -> str:
  return re.sub(r'[-_.]+', '-', text).lower()


def _listed(path: pathlib.Path) -> dict[str, list[Requirement]]:
  """Requirement lines of a pip requirements file, by project name."""
  found = {}
  for line in path.read_text(encoding='utf-8').splitlines():
    line = line.split('#', 1)[0].strip()
    if line:
      requirement = Requirement(line)
      found.setdefault(_name(requirement.name), []).append(requirement)
  return found


def _requires(distribution: str) -> list[Requirement]:
  """What `distribution` requires without extras, on this platform."""
  requirements = [Requirement(r) for r in
                  importlib.metadata.requires(distribution) or []]
  return [r for r in requirements
          if r.marker is None or r.marker.evaluate({'extra': ''})]


def test_no_deps_list_pins_the_installed_versions():
  no_deps = _listed(TOOLS / 'tpu_vm_no_deps.txt')
  for name, (requirement,) in no_deps.items():
    installed = importlib.metadata.version(name)
    assert requirement.specifier.contains(installed), (name, installed)


def test_every_requirement_of_the_no_deps_packages_is_listed():
  listed = _listed(TOOLS / 'tpu_vm_requirements.txt')
  no_deps = _listed(TOOLS / 'tpu_vm_no_deps.txt')
  assert TENSORFLOW not in listed and 'tensorflow-tpu' in listed
  missing = []
  for distribution in [*no_deps, 'cmt-deeplab']:
    for requirement in _requires(distribution):
      name = _name(requirement.name)
      if name == TENSORFLOW or name in no_deps:
        continue
      if requirement not in listed.get(name, []):
        missing.append(f'{distribution}: {requirement}')
  assert not missing, missing

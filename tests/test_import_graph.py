"""The import graph of the installed package, read from the source (no
module is imported): no loop between files, and nothing outside
`cmt/tools/` imports the commands."""

import ast
import pathlib

from tests.conftest import REPO_ROOT


def package_roots(repo: pathlib.Path) -> dict:
  """setup.py's PACKAGE_ROOTS: package -> the top-level folder it installs
  from."""
  for node in ast.parse((repo / 'setup.py').read_text()).body:
    if (isinstance(node, ast.Assign) and
        [t.id for t in node.targets] == ['PACKAGE_ROOTS']):
      return ast.literal_eval(node.value)
  raise AssertionError('setup.py has no PACKAGE_ROOTS')


ROOTS = package_roots(REPO_ROOT)
TOOLS = 'cmt.tools'


def modules(repo: pathlib.Path) -> dict:
  """Dotted module name -> its file, for every file of the package."""
  found = {}
  for package, root in ROOTS.items():
    for path in sorted((repo / root).rglob('*.py')):
      parts = list(path.relative_to(repo / root).with_suffix('').parts)
      if parts[-1] == '__init__':
        parts.pop()
      found['.'.join([package, *parts])] = path
  return found


def import_graph(repo: pathlib.Path) -> dict:
  """Module -> the modules of the package it imports, anywhere in the file
  (a function-level import is a dependency too)."""
  known = modules(repo)
  graph = {}
  for name, path in known.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module:
        targets = [node.module] + [f'{node.module}.{alias.name}'
                                   for alias in node.names]
      else:
        continue
      imported.update(t for t in targets if t in known and t != name)
    graph[name] = imported
  return graph


def loops(graph: dict) -> list:
  """The strongly connected groups of more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for successor in sorted(graph[node]):
      if successor not in index:
        visit(successor)
        low[node] = min(low[node], low[successor])
      elif successor in on_stack:
        low[node] = min(low[node], index[successor])
    if low[node] == index[node]:
      group = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        group.append(member)
        if member == node:
          break
      if len(group) > 1:
        found.append(sorted(group))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_no_import_loop_between_files():
  assert loops(import_graph(REPO_ROOT)) == []


def test_only_the_commands_import_the_commands():
  graph = import_graph(REPO_ROOT)
  inside = lambda name: name == TOOLS or name.startswith(TOOLS + '.')
  upward = sorted(f'{name} -> {target}' for name, targets in graph.items()
                  if not inside(name) for target in targets if inside(target))
  assert upward == []


def test_a_loop_and_an_upward_import_are_found():
  graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
  assert loops(graph) == [['a', 'b', 'c']]
  assert modules(REPO_ROOT)['cmt.tools.train'].name == 'train.py'

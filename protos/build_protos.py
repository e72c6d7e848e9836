"""Regenerates the `*_pb2.py` modules from the `.proto` sources.

The generated modules are committed so that `pip install` needs no protoc;
`tests/protos/test_generated_in_sync.py` proves they match the sources.
Run after editing a `.proto` (needs the `dev` extra for grpcio-tools):

    python -m cmt.protos.build_protos
"""

import os
import pathlib
import shutil
import sys
import tempfile

PROTO_DIR = pathlib.Path(__file__).resolve().parent
# The import path the .proto files use for each other, and the package the
# generated modules live in.
VIRTUAL_PACKAGE = pathlib.Path('cmt', 'protos')


def proto_sources():
  return sorted(PROTO_DIR.glob('*.proto'))


def generate(output_dir):
  """Compiles every .proto into `output_dir`; returns the generated paths."""
  from grpc_tools import protoc  # pylint: disable=g-import-not-at-top
  import grpc_tools  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tree:
    source_dir = pathlib.Path(tree, 'src', VIRTUAL_PACKAGE)
    source_dir.mkdir(parents=True)
    for source in proto_sources():
      shutil.copy(source, source_dir / source.name)
    out = pathlib.Path(tree, 'out')
    out.mkdir()
    well_known = pathlib.Path(grpc_tools.__file__).parent / '_proto'
    args = ['protoc', f'-I{pathlib.Path(tree, "src")}', f'-I{well_known}',
            f'--python_out={out}', f'--pyi_out={out}']
    args += [str(VIRTUAL_PACKAGE / p.name) for p in proto_sources()]
    cwd = os.getcwd()
    os.chdir(pathlib.Path(tree, 'src'))
    try:
      if protoc.main(args) != 0:
        raise RuntimeError('protoc failed on ' + ', '.join(args[5:]))
    finally:
      os.chdir(cwd)
    written = []
    for generated in sorted((out / VIRTUAL_PACKAGE).iterdir()):
      target = pathlib.Path(output_dir, generated.name)
      shutil.copy(generated, target)
      written.append(target)
    return written


def main():
  for path in generate(PROTO_DIR):
    print('wrote', path)


if __name__ == '__main__':
  sys.exit(main())

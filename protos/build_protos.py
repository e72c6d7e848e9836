"""Regenerates the `*_pb2.py` modules from the `.proto` sources.

The generated modules are committed so that `pip install` needs no protoc;
`tests/protos/test_generated_in_sync.py` proves they match the sources.
Run after editing a `.proto` (needs grpcio-tools, in the `test` extra):

    make protos        # or: python -m cmt.protos.build_protos
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile

PROTO_DIR = pathlib.Path(__file__).resolve().parent
# The import path the .proto files use for each other, and the package the
# generated modules live in.
VIRTUAL_PACKAGE = pathlib.Path('cmt', 'protos')


def proto_sources():
  return sorted(PROTO_DIR.glob('*.proto'))


def generate(output_dir):
  """Compiles every .proto into `output_dir`; returns the generated paths.

  protoc runs in a child process: grpc_tools' protoc crashes a process that
  has already imported TensorFlow (two protobuf C++ runtimes).
  """
  import grpc_tools  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tree:
    source_dir = pathlib.Path(tree, 'src', VIRTUAL_PACKAGE)
    source_dir.mkdir(parents=True)
    for source in proto_sources():
      shutil.copy(source, source_dir / source.name)
    out = pathlib.Path(tree, 'out')
    out.mkdir()
    well_known = pathlib.Path(grpc_tools.__file__).parent / '_proto'
    sources = [str(VIRTUAL_PACKAGE / p.name) for p in proto_sources()]
    result = subprocess.run(
        [sys.executable, '-m', 'grpc_tools.protoc', '-I.', f'-I{well_known}',
         f'--python_out={out}', f'--pyi_out={out}', *sources],
        cwd=pathlib.Path(tree, 'src'), capture_output=True, text=True,
        check=False)
    if result.returncode != 0:
      raise RuntimeError(f'protoc failed on {", ".join(sources)}:\n'
                         f'{result.stderr}')
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

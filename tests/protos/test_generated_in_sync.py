"""The committed *_pb2 modules match the .proto sources."""

import importlib

from google.protobuf import descriptor_pb2

from cmt.protos import build_protos


def test_generated_modules_match_sources(tmp_path):
  written = build_protos.generate(tmp_path)
  assert {p.name for p in written if p.suffix == '.py'} == {
      s.stem + '_pb2.py' for s in build_protos.proto_sources()}
  for source in build_protos.proto_sources():
    module = importlib.import_module(f'cmt.protos.{source.stem}_pb2')
    committed = descriptor_pb2.FileDescriptorProto.FromString(
        module.DESCRIPTOR.serialized_pb)
    fresh_text = (tmp_path / f'{source.stem}_pb2.py').read_text()
    committed_text = (build_protos.PROTO_DIR /
                      f'{source.stem}_pb2.py').read_text()
    assert fresh_text == committed_text, (
        f'{source.name} changed: run `make protos` and commit the result')
    assert committed.name == f'cmt/protos/{source.name}'

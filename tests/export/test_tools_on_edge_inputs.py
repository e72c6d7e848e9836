"""cmt-predict, cmt-visualize, cmt-export and `cmt-config params` on edge
inputs: extreme aspect ratios, unreadable images, two inputs of one name, a
config that does not match its checkpoint, placeholders that change the
model, and the permissions of what they write."""

import gc
import json
import os
import stat

import numpy as np
from PIL import Image
import pytest

from cmt.data import synthetic
from cmt.tools import export as export_main
from cmt.tools import predict as predict_tool
from cmt.tools import visualize as visualize_tool
from tests.conftest import REPO_ROOT
from tests.conftest import TINY_CONFIG

DEMO_CONFIG = REPO_ROOT / 'configs' / 'demo' / 'cmt_deeplab_synthetic_cpu.textproto'


def _save(path, height, width, seed=0):
  pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3),
                                                 dtype=np.uint8)
  Image.fromarray(pixels).save(path)


def test_resized_size_never_rounds_a_side_to_zero():
  """The eval resize of a 40 x 5000 image into a 33 x 33 range keeps at
  least one pixel per side (0 x 33 is a size no resize can produce)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cmt.data import preprocessing  # pylint: disable=g-import-not-at-top
  for size, expected in (([40, 5000], [1, 33]), ([5000, 40], [33, 1]),
                         ([1, 100000], [1, 33]), ([60, 30], [33, 16])):
    got = preprocessing.resized_size(tf.constant(size), (33, 33), (33, 33))
    assert got.numpy().tolist() == expected, size


def test_predict_runs_extreme_aspect_ratios_and_skips_only_bad_files(
    tiny_saved_model, tmp_path, capfd):
  """40 x 5000 and 5000 x 40 images are predicted at their own size; an
  unreadable file is reported in one line and skipped, the others still run
  (exit 1). --overwrite replaces an old output."""
  inputs = tmp_path / 'in'
  inputs.mkdir()
  sizes = {'a_normal': (30, 20), 'b_wide': (40, 5000), 'c_tall': (5000, 40)}
  for index, (name, (height, width)) in enumerate(sizes.items()):
    _save(inputs / f'{name}.png', height, width, seed=index)
  (inputs / 'd_broken.png').write_bytes(b'not a png')
  out = tmp_path / 'out'
  (out / 'overlay').mkdir(parents=True)
  (out / 'overlay' / 'a_normal.png').write_text('old')
  status = predict_tool.main([
      f'--model={tiny_saved_model}', f'--input={inputs}',
      f'--output_dir={out}', '--no_progress', '--overwrite'])
  err = capfd.readouterr().err
  assert status == 1
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1 and 'd_broken.png' in lines[0], err
  content = json.loads((out / 'panoptic.json').read_text())
  assert sorted(a['image_id'] for a in content['annotations']) == sorted(
      sizes)
  for name, (height, width) in sizes.items():
    with Image.open(out / 'panoptic' / f'{name}.png') as png:
      assert png.size == (width, height)
    with Image.open(out / 'overlay' / f'{name}.png') as png:
      assert png.size == (width, height)
  assert not [p for p in out.rglob('*') if '.tmp' in p.name]


def test_predict_refuses_same_stem_inputs_up_front(tmp_path, capfd):
  """x.jpg and x.png would write the same outputs: refused in one line
  before anything runs."""
  inputs = tmp_path / 'in'
  inputs.mkdir()
  _save(inputs / 'x.jpg', 10, 10)
  _save(inputs / 'x.png', 10, 10)
  out = tmp_path / 'out'
  status = predict_tool.main(['--model=unused', f'--input={inputs}',
                              f'--output_dir={out}', '--no_progress'])
  err = capfd.readouterr().err
  assert status == 1
  assert err.count('\n') == 1 and 'x.jpg' in err and 'x.png' in err, err
  assert not out.exists()


def test_visualize_runs_an_extreme_aspect_ratio(tiny_checkpoint, tmp_path,
                                                capfd):
  """cmt-visualize draws both figures of a 40 x 5000 image."""
  image = tmp_path / 'wide.png'
  _save(image, 40, 5000)
  out = tmp_path / 'figures'
  status = visualize_tool.main([f'--config_file={TINY_CONFIG}',
                                f'--checkpoint_path={tiny_checkpoint}',
                                f'--input={image}', f'--output_dir={out}'])
  assert status == 0, capfd.readouterr().err
  assert sorted(os.listdir(out)) == ['wide_fig1_cross_attention.png',
                                     'wide_fig5_clustering.png']


def test_saved_model_is_readable_by_other_users(tiny_saved_model):
  """The SavedModel folders get the umask's mode, not mkdtemp's 0700."""
  umask = os.umask(0)
  os.umask(umask)
  for folder in (tiny_saved_model, os.path.join(tiny_saved_model,
                                                'variables')):
    mode = stat.S_IMODE(os.stat(folder).st_mode)
    assert mode == 0o777 & ~umask, oct(mode)


def test_mismatched_export_prints_one_line(tiny_checkpoint, tmp_path, capfd):
  """A config that does not match the checkpoint gives one line, without
  TensorFlow's restore warnings after it."""
  output = tmp_path / 'model'
  status = export_main.main([
      f'--config_file={TINY_CONFIG}',
      f'--checkpoint_path={tiny_checkpoint}', f'--output_path={output}',
      '--override=model_options.transformer.num_cluster_centers=4'])
  gc.collect()  # where TensorFlow logged the unrestored values
  err = capfd.readouterr().err
  assert status == 1
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1, err[:2000]
  assert 'config and checkpoint disagree' in lines[0]
  assert not output.exists()


@pytest.mark.parametrize('through', ['--param', 'environment'])
def test_params_counts_the_demo_config(through, tmp_path, capsys,
                                       monkeypatch):
  """`cmt-config params` fills ${CATEGORIES_JSON}, which sets the class
  count, from --param or from the environment."""
  from cmt.tools import config as config_tool  # pylint: disable=g-import-not-at-top
  categories = tmp_path / 'categories.json'
  categories.write_text(json.dumps(synthetic.categories_json()))
  args = ['params', str(DEMO_CONFIG)]
  if through == '--param':
    args += ['--param', f'CATEGORIES_JSON={categories}']
  else:
    monkeypatch.setenv('CATEGORIES_JSON', str(categories))
  assert config_tool.main(args) == 0, capsys.readouterr().err
  assert ' parameters (' in capsys.readouterr().out

"""cmt-predict on the real COCO samples: three outputs per image at its size."""

import json

import numpy as np
from PIL import Image
import pytest

from cmt import predict
from cmt.evaluation import coco_panoptic_format
from cmt.tools import predict as predict_tool
from tests.conftest import TINY_CONFIG


def _check_outputs(output_dir, name, size, info):
  """The overlay, panoptic PNG and segments JSON of one image agree."""
  overlay = Image.open(output_dir / 'overlay' / f'{name}.png')
  assert overlay.size == size and overlay.mode == 'RGB'
  ids = coco_panoptic_format.read_segment_ids(
      str(output_dir / 'panoptic' / f'{name}.png'))
  assert ids.shape == (size[1], size[0])
  segments = json.loads(
      (output_dir / 'segments' / f'{name}.json').read_text())
  assert (segments['height'], segments['width']) == (size[1], size[0])
  listed = {s['id']: s for s in segments['segments_info']}
  values, areas = np.unique(ids[ids != 0], return_counts=True)
  assert sorted(listed) == values.tolist()
  for value, area in zip(values.tolist(), areas.tolist()):
    segment = listed[value]
    assert segment['area'] == area
    category = info.categories[info.to_class_id(segment['category_id']) - 1]
    assert segment['category_name'] == category.name
    assert segment['isthing'] == int(category.is_thing)
    assert 0 < segment['score'] <= 1
  return ids


def test_predict_writes_three_outputs_per_coco_image(
    coco_sample, tiny_saved_model, tiny_inference, tmp_path):
  output_dir = tmp_path / 'out'
  assert predict_tool.main([f'--model={tiny_saved_model}',
                            f'--input={coco_sample / "images"}',
                            f'--output_dir={output_dir}', '--no_progress']) == 0
  images = sorted((coco_sample / 'images').glob('*.jpg'))
  assert len(images) == 2
  for path in images:
    size = Image.open(path).size
    ids = _check_outputs(output_dir, path.stem, size,
                         tiny_inference.dataset_info)
    assert len(np.unique(ids)) > 1
  combined = json.loads((output_dir / 'panoptic.json').read_text())
  assert sorted(a['file_name'] for a in combined['annotations']) == sorted(
      p.stem + '.png' for p in images)


@pytest.mark.slow
def test_config_and_checkpoint_give_the_saved_model_outputs(
    coco_sample, tiny_saved_model, tiny_checkpoint, tmp_path):
  image = sorted((coco_sample / 'images').glob('*.jpg'))[0]
  for mode, flags in (('saved', [f'--model={tiny_saved_model}']),
                      ('config', [f'--config_file={TINY_CONFIG}',
                                  f'--checkpoint_path={tiny_checkpoint}'])):
    assert predict_tool.main(flags + [f'--input={image}', '--no_progress',
                                 f'--output_dir={tmp_path / mode}']) == 0
  saved, config = (np.asarray(Image.open(
      tmp_path / mode / 'panoptic' / f'{image.stem}.png'))
                   for mode in ('saved', 'config'))
  np.testing.assert_array_equal(saved, config)


def test_gray_rgba_and_unreadable_images(coco_sample, tiny_saved_model,
                                         tiny_inference, tmp_path, capsys):
  source = Image.open(sorted((coco_sample / 'images').glob('*.jpg'))[0])
  inputs = tmp_path / 'inputs'
  inputs.mkdir()
  small = source.resize((source.width // 4, source.height // 4))
  small.convert('L').save(inputs / 'gray.png')
  rgba = small.convert('RGBA')
  rgba.putalpha(128)
  rgba.save(inputs / 'rgba.png')
  small.convert('P').save(inputs / 'palette.png')
  (inputs / 'broken.jpg').write_bytes(b'not an image')
  output_dir = tmp_path / 'out'
  code = predict_tool.main([f'--model={tiny_saved_model}',
                            f'--input={inputs / "*.*"}',
                            f'--output_dir={output_dir}', '--no_progress'])
  assert code == 1
  assert 'broken.jpg' in capsys.readouterr().err
  for name in ('gray', 'rgba', 'palette'):
    _check_outputs(output_dir, name, small.size, tiny_inference.dataset_info)
  assert not (output_dir / 'overlay' / 'broken.png').exists()
  # Gray predicts as the gray image repeated over RGB.
  gray = np.asarray(Image.open(inputs / 'gray.png'))
  as_rgb = predict.load_saved_model(tiny_saved_model)(
      np.repeat(gray[..., None], 3, -1))
  np.testing.assert_array_equal(
      coco_panoptic_format.read_segment_ids(
          str(output_dir / 'panoptic' / 'gray.png')) > 0,
      as_rgb['panoptic'] > 0)


def test_input_that_matches_nothing_is_an_error(tmp_path, capsys):
  assert predict_tool.main(['--model=unused', f'--input={tmp_path / "*.jpg"}',
                            f'--output_dir={tmp_path}']) == 1
  assert 'no image found' in capsys.readouterr().err


def test_read_image_names_the_file(tmp_path):
  path = tmp_path / 'empty.png'
  path.write_bytes(b'')
  with pytest.raises(ValueError, match='empty.png'):
    predict.read_image(str(path))

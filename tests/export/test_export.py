"""cmt-export: the SavedModel runs without `cmt` and matches the model."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cmt import common
from cmt import export
from cmt.model import post_processing
from cmt.tools import export as export_main
from tests.conftest import TINY_CONFIG

# Loads the SavedModel in a fresh interpreter that never imports cmt.
_CLIENT = r'''
import json, sys
import numpy as np
import tensorflow as tf
saved_model, image_file, out_file = sys.argv[1:4]
loaded = tf.saved_model.load(saved_model)
serve = loaded.signatures['serving_default']
image = np.load(image_file)
result = {k: v.numpy() for k, v in serve(image=tf.constant(image)).items()}
gray = serve(image=tf.constant(image[..., :1]))['panoptic'].numpy()
rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 7, np.uint8)],
                      -1)
rgba_panoptic = serve(image=tf.constant(rgba))['panoptic'].numpy()
metadata = {k: v.numpy() for k, v in loaded.signatures['metadata']().items()}
assert 'cmt' not in sys.modules, 'the client imported cmt'
np.savez(out_file, gray=gray, rgba=rgba_panoptic, **result,
         **{'meta_' + k: v for k, v in metadata.items()})
'''


def _image(height, width, seed=0):
  return np.random.default_rng(seed).integers(
      0, 256, (height, width, 3), dtype=np.uint8)


def _serve(inference, image):
  return {k: v.numpy() for k, v in inference.serve(tf.constant(image)).items()}


@pytest.mark.slow
def test_saved_model_without_cmt_gives_the_in_process_maps(
    tiny_saved_model, tiny_inference, tmp_path):
  image = _image(50, 80)
  np.save(tmp_path / 'image.npy', image)
  env = dict(os.environ, PYTHONPATH='')
  subprocess.run([sys.executable, '-c', _CLIENT, tiny_saved_model,
                  str(tmp_path / 'image.npy'), str(tmp_path / 'out.npz')],
                 check=True, env=env, cwd=tmp_path, capture_output=True)
  client = np.load(tmp_path / 'out.npz', allow_pickle=True)
  expected = _serve(tiny_inference, image)
  assert client['panoptic'].shape == (50, 80)
  assert len(np.unique(expected['panoptic'])) > 1  # not a trivial map
  for key in ('panoptic', 'semantic', 'instance', 'segment_labels',
              'segment_classes'):
    np.testing.assert_array_equal(client[key], expected[key], err_msg=key)
  np.testing.assert_allclose(client['segment_scores'],
                             expected['segment_scores'], rtol=1e-5)
  # Gray and RGBA inputs: gray repeated over RGB, alpha dropped.
  gray_as_rgb = np.repeat(image[..., :1], 3, axis=-1)
  np.testing.assert_array_equal(client['gray'],
                                _serve(tiny_inference, gray_as_rgb)['panoptic'])
  np.testing.assert_array_equal(client['rgba'], expected['panoptic'])
  info = tiny_inference.dataset_info
  assert [n.decode() for n in client['meta_class_names']] == list(
      info.class_names)
  assert client['meta_category_ids'].tolist() == [0] + [
      c.dataset_id for c in info.categories]
  assert int(client['meta_label_divisor']) == info.label_divisor
  assert client['meta_crop_size'].tolist() == [65, 65]


def test_serve_equals_model_and_post_process_on_a_crop_sized_image(
    tiny_inference, tiny_options):
  """No resizing or padding at the crop size: serve must reduce to the
  model followed by post_process."""
  image = _image(65, 65, seed=1)
  batch, _ = tiny_inference.preprocess(tf.constant(image))
  outputs = tiny_inference.model_outputs(batch)
  direct = post_processing.post_process(
      outputs, tiny_options.evaluator_options, tiny_inference.dataset_info)
  served = _serve(tiny_inference, image)
  np.testing.assert_array_equal(served['panoptic'],
                                direct[common.PRED_PANOPTIC][0].numpy())
  np.testing.assert_array_equal(served['segment_labels'],
                                direct[common.PRED_SEGMENT_LABELS][0].numpy())


@pytest.mark.parametrize('height,width', [(50, 80), (200, 131), (9, 4)])
def test_maps_come_at_the_input_size_and_agree(tiny_inference, height, width):
  served = _serve(tiny_inference, _image(height, width, seed=height))
  divisor = tiny_inference.dataset_info.label_divisor
  assert served['panoptic'].shape == (height, width)
  np.testing.assert_array_equal(
      served['panoptic'], served['semantic'] * divisor + served['instance'])
  # Every segment in the map comes from a center of the segment list.
  present = set(np.unique(served['panoptic']).tolist()) - {0}
  assert present <= set(served['segment_labels'].tolist())
  np.testing.assert_array_equal(served['segment_classes'],
                                served['segment_labels'] // divisor)
  assert np.all((served['segment_scores'] > 0) ==
                (served['segment_labels'] > 0))


def test_valid_region_is_resized_back_not_the_padding(tiny_inference):
  """A 40 x 80 image is resized to 32 x 65 and padded to 65 x 65; the map
  returned must be the top 32 rows of the crop map, scaled back."""
  image = _image(40, 80, seed=3)
  batch, resized = tiny_inference.preprocess(tf.constant(image))
  assert resized.numpy().tolist() == [32, 65]
  assert batch.shape == (1, 65, 65, 3)
  np.testing.assert_allclose(batch[0, 32:].numpy(), 127.5)  # mean padding
  outputs = tiny_inference.model_outputs(batch)
  crop_map = post_processing.post_process(
      outputs, tiny_inference.evaluator_options,
      tiny_inference.dataset_info)[common.PRED_PANOPTIC][0].numpy()
  served = _serve(tiny_inference, image)['panoptic']
  rows = np.floor(np.arange(40) * 31 / 39 + 0.5).astype(int)
  cols = np.floor(np.arange(80) * 64 / 79 + 0.5).astype(int)
  np.testing.assert_array_equal(served, crop_map[:32, :65][rows][:, cols])


def test_two_channel_gray_alpha_is_gray(tiny_inference):
  gray = _image(30, 30, seed=4)[..., :1]
  with_alpha = np.concatenate([gray, np.zeros_like(gray)], -1)
  np.testing.assert_array_equal(
      _serve(tiny_inference, with_alpha)['panoptic'],
      _serve(tiny_inference, gray)['panoptic'])


def test_five_channels_are_rejected_with_a_message(tiny_inference):
  with pytest.raises(tf.errors.InvalidArgumentError, match='1, 2, 3 or 4'):
    tiny_inference.serve(tf.zeros([10, 10, 5], tf.uint8))


def test_bad_checkpoint_paths_are_named(tiny_options, tmp_path):
  with pytest.raises(ValueError, match='no checkpoint'):
    export.build_inference(tiny_options, str(tmp_path))
  missing = str(tmp_path / 'ckpt-7')
  with pytest.raises(ValueError, match='ckpt-7'):
    export.build_inference(tiny_options, missing)


def test_cli_reports_a_bad_checkpoint_and_writes_nothing(tmp_path, capsys):
  output = tmp_path / 'model'
  code = export_main.main([f'--config_file={TINY_CONFIG}',
                           f'--checkpoint_path={tmp_path / "nope"}',
                           f'--output_path={output}'])
  assert code == 1
  assert 'nope' in capsys.readouterr().err
  assert not output.exists()


def test_export_refuses_to_overwrite_and_leaves_no_temporary(
    tiny_inference, tiny_saved_model):
  parent = pathlib.Path(tiny_saved_model).parent
  with pytest.raises(FileExistsError, match='--overwrite'):
    export.export(tiny_inference, tiny_saved_model)
  assert sorted(p.name for p in parent.iterdir()) == ['saved_model']
  assert (pathlib.Path(tiny_saved_model) / 'saved_model.pb').is_file()


@pytest.mark.slow
def test_cli_exports_a_loadable_model(tiny_checkpoint, tmp_path):
  output = tmp_path / 'exported'
  assert export_main.main([f'--config_file={TINY_CONFIG}',
                           f'--checkpoint_path={tiny_checkpoint}',
                           f'--output_path={output}']) == 0
  loaded = tf.saved_model.load(str(output))
  result = loaded.signatures['serving_default'](
      image=tf.constant(_image(20, 30)))
  assert result['panoptic'].shape == (20, 30)
  assert set(result) == {'panoptic', 'semantic', 'instance', 'segment_labels',
                         'segment_classes', 'segment_scores'}

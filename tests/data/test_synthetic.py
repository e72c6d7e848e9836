"""The synthetic panoptic dataset: deterministic, valid COCO format."""

import filecmp
import json
import os

import numpy as np
from PIL import Image

from cmt.data import dataset_info
from cmt.data import synthetic
from cmt.tools import build_data as build_data_tool
from cmt.tools import synthetic_data


def _files(root):
  return sorted(os.path.relpath(os.path.join(folder, name), root)
                for folder, _, names in os.walk(root) for name in names)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
  for name, seed in (('a', 4), ('b', 4), ('c', 5)):
    assert synthetic_data.main([
        f'--output_dir={tmp_path / name}', '--num_train=3', '--num_val=2',
        '--image_size=65', f'--seed={seed}']) == 0
  files = _files(tmp_path / 'a')
  assert files == _files(tmp_path / 'b') == _files(tmp_path / 'c')
  assert len(files) == 1 + 2 + 2 * (3 + 2)
  _, mismatch, errors = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'b',
                                         files, shallow=False)
  assert not mismatch and not errors
  _, mismatch, _ = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'c', files,
                                    shallow=False)
  assert 'images/train/train_000000.jpg' in mismatch


def test_scenes_have_stuff_and_things(tmp_path):
  paths = synthetic.write_dataset(str(tmp_path), num_train=40, num_val=0,
                                  image_size=(129, 129), seed=0)
  info = dataset_info.from_categories_json(paths['categories_json'])
  assert info.num_classes == 7 and sum(info.thing_mask) == 4
  with open(paths['train_json']) as f:
    data = json.load(f)
  thing_classes = set()
  for image, annotation in zip(data['images'], data['annotations']):
    assert (image['height'], image['width']) == (129, 129)
    jpeg = Image.open(tmp_path / 'images' / 'train' / image['file_name'])
    assert jpeg.format == 'JPEG' and jpeg.size == (129, 129)
    png = np.asarray(Image.open(tmp_path / 'panoptic' / 'train' /
                                annotation['file_name']), np.int64)
    ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
    segments = annotation['segments_info']
    assert sorted(s['id'] for s in segments) == np.unique(ids).tolist()
    assert 5 in [s['category_id'] for s in segments]  # sky
    things = [s['category_id'] for s in segments if s['category_id'] <= 4]
    assert 1 <= len(things) <= 4
    thing_classes.update(things)
    for s in segments:
      assert s['area'] == int((ids == s['id']).sum())
      x, y, w, h = s['bbox']
      assert (ids[y:y + h, x:x + w] == s['id']).sum() == s['area']
  assert thing_classes == {1, 2, 3, 4}


def test_things_occlude_but_stay_at_least_half_visible():
  hidden_fractions = []
  for index in range(40):
    scene = synthetic.generate_scene(np.random.default_rng([0, 0, index]),
                                     129, 129)
    for segment_id, full_area in scene.thing_areas.items():
      visible = int((scene.ids == segment_id).sum())
      hidden_fractions.append(1 - visible / full_area)
  assert max(hidden_fractions) <= 0.5
  assert sum(f > 0.05 for f in hidden_fractions) >= 3  # occlusion happens


def test_converts_with_cmt_build_data(tmp_path):
  raw = tmp_path / 'raw'
  assert synthetic_data.main([f'--output_dir={raw}', '--num_train=4',
                              '--num_val=2', '--image_size=65']) == 0
  for split in ('train', 'val'):
    args = synthetic.build_data_args(str(raw), split, str(tmp_path / 'rec'))
    assert build_data_tool.main(
        args + ['--num_shards=2', '--num_workers=1']) == 0
  assert sorted(os.listdir(tmp_path / 'rec')) == [
      'train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord',
      'val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']


def test_hard_difficulty_is_deterministic_and_harder():
  """`--difficulty=hard` gives the same scene for a seed, more and
  smaller things than the demo, and same-class things that touch."""
  hard = synthetic.DIFFICULTIES['hard']
  demo_counts, hard_counts, hard_areas, touching = [], [], [], 0
  for index in range(12):
    scene = synthetic.generate_scene(np.random.default_rng([3, 0, index]),
                                     129, 129, hard)
    again = synthetic.generate_scene(np.random.default_rng([3, 0, index]),
                                     129, 129, hard)
    assert (scene.image == again.image).all() and (scene.ids == again.ids).all()
    assert scene.segments == again.segments
    things = [s for s in scene.segments if s['category_id'] <= 4]
    hard_counts.append(len(things))
    hard_areas += [s['area'] for s in things]
    # Same-class things that touch: a pixel of one next to a pixel of another.
    ids = scene.ids
    for a, b in ((ids[1:], ids[:-1]), (ids[:, 1:], ids[:, :-1])):
      seam = (a != b) & (a // 1000 == b // 1000) & (a < 5000)
      touching += int(seam.any())
    demo = synthetic.generate_scene(np.random.default_rng([3, 0, index]),
                                    129, 129)
    demo_counts.append(sum(s['category_id'] <= 4 for s in demo.segments))
  assert min(hard_counts) >= 2 and max(hard_counts) <= 8
  assert np.mean(hard_counts) > 1.5 * np.mean(demo_counts)
  # Radius 7-15 px (demo: 9-20), partly hidden.
  assert np.median(hard_areas) < 400
  assert touching >= 4


def test_difficulty_flag(tmp_path):
  assert synthetic_data.main([f'--output_dir={tmp_path / "h"}', '--num_train=1',
                              '--num_val=0', '--image_size=65',
                              '--difficulty=hard']) == 0
  with open(tmp_path / 'h' / 'panoptic_train.json') as f:
    assert 'touching_probability=0.4' in json.load(f)['info']['description']

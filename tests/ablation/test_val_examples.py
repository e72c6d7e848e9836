"""`run_one.val_examples` pairs each held-out image with its own annotation
(by image id, as `cmt-build-data` does), whatever the JSON's order."""

import json

import numpy as np
from PIL import Image

from cmt.ablation import run_one
from cmt.data import panoptic_label
from cmt.data import synthetic


def test_examples_pair_images_and_annotations_by_id(tmp_path):
  synthetic.write_dataset(str(tmp_path), num_train=1, num_val=4,
                          image_size=(33, 33), seed=3)
  path = tmp_path / 'panoptic_val.json'
  data = json.loads(path.read_text())
  data['annotations'].reverse()  # No longer in the order of `images`.
  path.write_text(json.dumps(data))
  names = {image['id']: image['file_name'] for image in data['images']}
  examples = list(run_one.val_examples(str(tmp_path)))
  assert len(examples) == 4
  for annotation, (image, ids, segments) in zip(
      sorted(data['annotations'], key=lambda a: names[a['image_id']]),
      examples):
    expected = np.asarray(Image.open(
        tmp_path / 'images' / 'val' / names[annotation['image_id']]))
    np.testing.assert_array_equal(image, expected)
    png = Image.open(tmp_path / 'panoptic' / 'val' / annotation['file_name'])
    np.testing.assert_array_equal(ids, panoptic_label.rgb_to_id(
        np.asarray(png)))
    listed = {s['id'] for s in annotation['segments_info']}
    assert set(segments['things']) | set(segments['stuff']) == listed

"""`cmt-evaluate` on the real COCO samples, its errors, and the writer."""

import json
import shutil

import numpy as np
import pytest

from cmt.data import dataset_info as dataset_info_lib
from cmt.evaluation import coco_panoptic_format
from cmt.tools import evaluate as evaluate_main

INFO = dataset_info_lib.COCO_PANOPTIC


def run(capsys, gt_json, gt_folder, pred_json, pred_folder, *extra):
  code = evaluate_main.main([
      f'--gt_json={gt_json}', f'--gt_folder={gt_folder}',
      f'--pred_json={pred_json}', f'--pred_folder={pred_folder}', *extra])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def label_maps(sample):
  """The samples' ground truth as (image name, semantic*256+instance map)."""
  data = json.loads((sample / 'panoptic_examples.json').read_text())
  maps = []
  for annotation in data['annotations']:
    ids = coco_panoptic_format.read_segment_ids(
        str(sample / 'panoptic' / annotation['file_name']))
    labels = np.zeros(ids.shape, np.int64)
    instances = {}
    for segment in annotation['segments_info']:
      class_id = INFO.to_class_id(segment['category_id'])
      instance = 0
      if INFO.is_thing(class_id) and not segment['iscrowd']:
        instance = instances[class_id] = instances.get(class_id, 0) + 1
      labels[ids == segment['id']] = class_id * 256 + instance
    maps.append((annotation['file_name'][:-len('.png')], labels))
  return data, maps


def test_ground_truth_against_itself_gives_100(coco_sample, capsys, tmp_path):
  gt_json = coco_sample / 'panoptic_examples.json'
  output = tmp_path / 'metrics.json'
  code, out, _ = run(capsys, gt_json, coco_sample / 'panoptic', gt_json,
                     coco_sample / 'panoptic', f'--output_json={output}')
  assert code == 0
  metrics = json.loads(output.read_text())
  for suffix in ('', '_things', '_stuff'):
    assert metrics['pq' + suffix] == metrics['sq' + suffix] == \
        metrics['rq' + suffix] == 100
  assert (metrics['n'], metrics['n_things'], metrics['n_stuff']) == (8, 4, 4)
  assert 'All       | 100.0  100.0  100.0     8' in out
  assert 'Things    | 100.0  100.0  100.0     4' in out
  assert 'Stuff     | 100.0  100.0  100.0     4' in out


def write_predictions(tmp_path, maps, name='pred'):
  writer = coco_panoptic_format.CocoPanopticWriter(
      str(tmp_path / f'{name}.json'), str(tmp_path / name), INFO)
  for image_name, labels in maps:
    writer.add(image_name, labels)
  writer.write_json()
  return tmp_path / f'{name}.json', tmp_path / name


def test_writer_round_trips_through_cmt_evaluate(coco_sample, capsys,
                                                 tmp_path):
  _, maps = label_maps(coco_sample)
  pred_json, pred_folder = write_predictions(tmp_path, maps)
  # The files are COCO panoptic: ids decode to dataset categories.
  written = json.loads(pred_json.read_text())
  segment = written['annotations'][0]['segments_info'][0]
  assert set(segment) == {'id', 'category_id', 'iscrowd', 'area', 'bbox'}
  assert written['annotations'][0]['image_id'] == 142238
  gt_json = coco_sample / 'panoptic_examples.json'
  output = tmp_path / 'metrics.json'
  code, _, err = run(capsys, gt_json, coco_sample / 'panoptic', pred_json,
                     pred_folder, f'--output_json={output}', '--workers=2')
  assert code == 0, err
  metrics = json.loads(output.read_text())
  assert (metrics['pq'], metrics['n']) == (100, 8)


def test_writer_boxes_and_areas_match_the_coco_ground_truth(coco_sample,
                                                            tmp_path):
  data, maps = label_maps(coco_sample)
  pred_json, _ = write_predictions(tmp_path, maps)
  written = json.loads(pred_json.read_text())
  for truth, ours in zip(data['annotations'], written['annotations']):
    expected = sorted((s['category_id'], s['area'], tuple(s['bbox']))
                      for s in truth['segments_info'])
    got = sorted((s['category_id'], s['area'], tuple(s['bbox']))
                 for s in ours['segments_info'])
    assert got == expected


def test_a_missing_stuff_segment_costs_its_class(coco_sample, capsys,
                                                 tmp_path):
  _, maps = label_maps(coco_sample)
  sky = INFO.to_class_id(187) * 256       # sky-other-merged, in both images
  name, labels = maps[0]
  maps[0] = (name, np.where(labels == sky, 0, labels))
  pred_json, pred_folder = write_predictions(tmp_path, maps)
  output = tmp_path / 'metrics.json'
  gt_json = coco_sample / 'panoptic_examples.json'
  code, _, _ = run(capsys, gt_json, coco_sample / 'panoptic', pred_json,
                   pred_folder, f'--output_json={output}')
  assert code == 0
  metrics = json.loads(output.read_text())
  # sky: 1 TP, 1 FN -> PQ = RQ = 1 / 1.5; every other class stays at 100.
  assert metrics['per_class']['sky-other-merged']['pq'] == pytest.approx(
      100 / 1.5)
  assert metrics['pq'] == pytest.approx((7 * 100 + 100 / 1.5) / 8)
  assert metrics['pq_stuff'] == pytest.approx((3 * 100 + 100 / 1.5) / 4)
  assert metrics['pq_things'] == 100


@pytest.fixture
def prediction_copy(coco_sample, tmp_path):
  """A writable copy of the ground truth posing as a prediction."""
  folder = tmp_path / 'pred'
  shutil.copytree(coco_sample / 'panoptic', folder)
  data = json.loads((coco_sample / 'panoptic_examples.json').read_text())
  return data, tmp_path / 'pred.json', folder


def _evaluate_broken(capsys, coco_sample, data, pred_json, pred_folder):
  pred_json.write_text(json.dumps(data))
  return run(capsys, coco_sample / 'panoptic_examples.json',
             coco_sample / 'panoptic', pred_json, pred_folder)


def test_missing_image_prediction_is_an_error(coco_sample, capsys,
                                              prediction_copy):
  data, pred_json, folder = prediction_copy
  data['annotations'] = data['annotations'][:1]
  code, _, err = _evaluate_broken(capsys, coco_sample, data, pred_json, folder)
  assert code == 1
  assert 'no prediction for image_id 439180' in err
  assert str(pred_json) in err


def test_segment_in_png_not_in_json_is_an_error(coco_sample, capsys,
                                                prediction_copy):
  data, pred_json, folder = prediction_copy
  dropped = data['annotations'][0]['segments_info'].pop()
  code, _, err = _evaluate_broken(capsys, coco_sample, data, pred_json, folder)
  assert code == 1
  assert f'segment ids [{dropped["id"]}] are in the PNG' in err
  assert '000000142238.png' in err


def test_segment_in_json_not_in_png_is_an_error(coco_sample, capsys,
                                                prediction_copy):
  data, pred_json, folder = prediction_copy
  data['annotations'][1]['segments_info'].append(
      {'id': 12345, 'category_id': 1, 'iscrowd': 0, 'area': 1,
       'bbox': [0, 0, 1, 1]})
  code, _, err = _evaluate_broken(capsys, coco_sample, data, pred_json, folder)
  assert code == 1
  assert 'segment ids [12345]' in err and 'not in its PNG' in err
  assert '000000439180.png' in err


def test_unknown_category_is_an_error(coco_sample, capsys, prediction_copy):
  data, pred_json, folder = prediction_copy
  data['annotations'][0]['segments_info'][0]['category_id'] = 999
  code, _, err = _evaluate_broken(capsys, coco_sample, data, pred_json, folder)
  assert code == 1
  assert 'unknown category_id 999' in err and str(pred_json) in err


def test_missing_png_is_an_error(coco_sample, capsys, prediction_copy):
  data, pred_json, folder = prediction_copy
  (folder / '000000439180.png').unlink()
  code, _, err = _evaluate_broken(capsys, coco_sample, data, pred_json, folder)
  assert code == 1
  assert '000000439180.png: panoptic PNG not found' in err


def test_categories_json_option(coco_sample, capsys, tmp_path):
  gt = json.loads((coco_sample / 'panoptic_examples.json').read_text())
  del gt['categories']
  gt_json = tmp_path / 'gt.json'
  gt_json.write_text(json.dumps(gt))
  code, _, err = run(capsys, gt_json, coco_sample / 'panoptic', gt_json,
                     coco_sample / 'panoptic')
  assert code == 1 and 'pass --categories_json' in err
  code, out, _ = run(capsys, gt_json, coco_sample / 'panoptic', gt_json,
                     coco_sample / 'panoptic', '--categories_json=' +
                     str(coco_sample / 'panoptic_coco_categories.json'))
  assert code == 0 and 'All       | 100.0' in out


def test_predictions_with_other_ids_pair_by_file_name(coco_sample, capsys,
                                                      prediction_copy):
  # cmt-predict names images by file stem; the ground truth has integer ids.
  data, pred_json, folder = prediction_copy
  for annotation in data['annotations']:
    annotation['image_id'] = annotation['file_name'][:-len('.png')] + '_x'
  code, out, _ = _evaluate_broken(capsys, coco_sample, data, pred_json,
                                  folder)
  assert code == 0
  assert 'All       | 100.0  100.0  100.0     8' in out


def test_default_workers_use_every_core():
  import os  # pylint: disable=g-import-not-at-top
  args = evaluate_main.build_parser().parse_args(
      ['--gt_json=a', '--gt_folder=b', '--pred_json=c', '--pred_folder=d'])
  assert args.workers == len(os.sched_getaffinity(0))

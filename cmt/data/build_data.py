"""`cmt-build-data`: a COCO-panoptic-format dataset -> sharded TFRecords.

    cmt-build-data --image_dir=D --panoptic_json=F --panoptic_dir=D \
        --output_dir=O [--categories_json=F] [--split_name=S] [--num_shards=K]
        [--overwrite]

Reads every annotation of the panoptic JSON (COCO 2017 itself, or a custom
dataset whose categories come from `--categories_json`), checks it against
its image and PNG, and writes `O/S-0000i-of-0000K.tfrecord` in DeepLab2's
example format (`cmt.data.tfrecord_format`) with labels
`semantic * 256 + instance` (`cmt.data.panoptic_label` documents the exact
encoding, crowd included).

Images are converted in parallel worker processes (`--num_workers`); a
progress bar runs on a terminal; a summary (images, segments per class,
crowd segments) is printed at the end. Shards are written under hidden
temporary names and renamed only once every image has converted, so a
failed or interrupted run leaves no file that looks like a shard.
--output_dir and --categories_json may be URLs (gs://...); the images and
panoptic PNGs are read from the local disk by the worker processes.
"""

import collections
import contextlib
import dataclasses
import json
import multiprocessing
import os
import sys
from typing import Iterable, Iterator, Optional

import tqdm

from cmt import atomic_files
from cmt.data import dataset_info as dataset_info_lib
from cmt.data import errors
from cmt.data import panoptic_label
from cmt.data.errors import DataError

_IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def shard_name(split_name: str, index: int, num_shards: int) -> str:
  """DeepLab2's shard naming: `split-00003-of-00010.tfrecord`."""
  return f'{split_name}-{index:05d}-of-{num_shards:05d}.tfrecord'


def _load_json(path: str, what: str):
  text = errors.read_local_file(path, what)
  try:
    return json.loads(text)
  except json.JSONDecodeError as error:
    raise DataError(f'{path}: {what} is not valid JSON: {error}') from None


def _find_image(image_dir: str, stem: str, json_path: str) -> str:
  for extension in _IMAGE_EXTENSIONS:
    candidate = os.path.join(image_dir, stem + extension)
    if os.path.exists(candidate):
      return candidate
  raise DataError(f'{os.path.join(image_dir, stem + ".jpg")}: the image of '
                  f'annotation {stem!r} in {json_path} is missing')


def read_tasks(image_dir: str, panoptic_json: str, panoptic_dir: str
               ) -> list[panoptic_label.ConversionTask]:
  """One task per annotation of the panoptic JSON, in file-name order.

  Image file names come from the JSON's `images` list (by `image_id`), or,
  when it has none, from the annotation's PNG name with an image extension.
  Raises DataError for a malformed JSON or a missing image or PNG.
  """
  data = _load_json(panoptic_json, 'the panoptic JSON')
  if not isinstance(data, dict) or not isinstance(data.get('annotations'),
                                                  list):
    raise DataError(f'{panoptic_json}: expected a dict with an "annotations" '
                    'list (COCO panoptic format)')
  image_files = {image.get('id'): image.get('file_name')
                 for image in data.get('images', [])}
  tasks, seen = [], set()
  for index, annotation in enumerate(data['annotations']):
    for key in ('file_name', 'segments_info'):
      if key not in annotation:
        raise DataError(f'{panoptic_json}: annotation #{index} has no '
                        f'{key!r}')
    png_name = annotation['file_name']
    stem = os.path.splitext(png_name)[0]
    if stem in seen:
      raise DataError(f'{panoptic_json}: annotation {png_name!r} appears '
                      'twice')
    seen.add(stem)
    png_path = os.path.join(panoptic_dir, png_name)
    if not os.path.exists(png_path):
      raise DataError(f'{png_path}: the panoptic PNG of annotation #{index} '
                      f'in {panoptic_json} is missing')
    image_name = image_files.get(annotation.get('image_id'))
    if image_name:
      image_path = os.path.join(image_dir, image_name)
      if not os.path.exists(image_path):
        raise DataError(f'{image_path}: the image of annotation '
                        f'{png_name!r} in {panoptic_json} is missing')
    else:
      image_path = _find_image(image_dir, stem, panoptic_json)
    tasks.append(panoptic_label.ConversionTask(
        name=os.path.splitext(os.path.basename(image_path))[0],
        image_path=image_path, png_path=png_path,
        segments_info=tuple(annotation['segments_info']),
        json_path=panoptic_json))
  if not tasks:
    raise DataError(f'{panoptic_json}: no annotations to convert')
  tasks.sort(key=lambda task: task.name)
  return tasks


# Worker processes receive the dataset description once, at start-up.
_WORKER_INFO: Optional[dataset_info_lib.DatasetInfo] = None


def _init_worker(info: dataset_info_lib.DatasetInfo):
  global _WORKER_INFO
  _WORKER_INFO = info


def _convert_in_worker(task):
  return panoptic_label.convert_task(task, _WORKER_INFO)


@contextlib.contextmanager
def _converted_images(tasks, info, num_workers: int
                      ) -> Iterator[Iterable[panoptic_label.ConvertedImage]]:
  """Converted images in task order, from `num_workers` processes."""
  if num_workers <= 1:
    yield (panoptic_label.convert_task(task, info) for task in tasks)
    return
  # Spawned workers import only numpy/PIL (no TensorFlow, no fork of its
  # threads).
  context = multiprocessing.get_context('spawn')
  pool = context.Pool(num_workers, initializer=_init_worker, initargs=(info,))
  try:
    yield pool.imap(_convert_in_worker, tasks, chunksize=4)
    pool.close()
  finally:
    pool.terminate()
    pool.join()


@contextlib.contextmanager
def _atomic_shards(output_dir: str, split_name: str, num_shards: int):
  """Yields temporary shard paths (local or URLs); renames each FILE to its
  final name only if the body completes (atomic on local disk, a copy on an
  object store), and deletes them otherwise."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  finals = [os.path.join(output_dir, shard_name(split_name, i, num_shards))
            for i in range(num_shards)]
  temps = [os.path.join(output_dir, f'.{os.path.basename(f)}.incomplete')
           for f in finals]
  try:
    yield temps
  except BaseException:
    for temp in temps:
      if tf.io.gfile.exists(temp):
        tf.io.gfile.remove(temp)
    raise
  for temp, final in zip(temps, finals):
    tf.io.gfile.rename(temp, final, overwrite=True)


@contextlib.contextmanager
def _progress(total: int, show: Optional[bool]):
  bar = tqdm.tqdm(total=total, unit='image', disable=(None if show is None
                                                      else not show),
                  file=sys.stderr, desc='converting')
  try:
    yield bar
  finally:
    bar.close()


@dataclasses.dataclass
class Summary:
  """What a conversion wrote."""
  num_images: int = 0
  segments_per_class: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)   # non-crowd, by class id
  crowd_per_class: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  shards: tuple = ()

  def add(self, segments):
    self.num_images += 1
    for segment in segments:
      counter = (self.crowd_per_class if segment.is_crowd
                 else self.segments_per_class)
      counter[segment.class_id] += 1

  def format(self, info: dataset_info_lib.DatasetInfo) -> str:
    lines = [f'{self.num_images} images, '
             f'{sum(self.segments_per_class.values())} segments, '
             f'{sum(self.crowd_per_class.values())} crowd segments, '
             f'{len(self.shards)} shards',
             f'{"class":>5}  {"name":<24} {"thing":<5} {"segments":>8} '
             f'{"crowd":>6}']
    for class_id in range(1, info.num_classes + 1):
      count = self.segments_per_class[class_id]
      crowd = self.crowd_per_class[class_id]
      if count or crowd:
        lines.append(f'{class_id:>5}  {info.class_names[class_id]:<24} '
                     f'{"yes" if info.is_thing(class_id) else "no":<5} '
                     f'{count:>8} {crowd:>6}')
    return '\n'.join(lines)


def build(image_dir: str, panoptic_json: str, panoptic_dir: str,
          output_dir: str, info: dataset_info_lib.DatasetInfo,
          split_name: str, num_shards: int, num_workers: int = 1,
          show_progress: Optional[bool] = None,
          overwrite: bool = False) -> Summary:
  """Converts a COCO-panoptic-format dataset; returns what it wrote.

  Images go to shards in contiguous runs of the sorted file names (shard i
  holds images [i n / K, (i + 1) n / K)). Raises DataError naming the file
  at fault; then no shard of this run exists. Shards of the same names
  that exist already are replaced only with `overwrite`.
  """
  if num_shards < 1:
    raise ValueError(f'--num_shards must be >= 1, got {num_shards}')
  tasks = read_tasks(image_dir, panoptic_json, panoptic_dir)
  # TensorFlow only now: missing files are reported without its start-up
  # time, and worker processes never import it.
  from cmt.data import tfrecord_format  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  num_shards = min(num_shards, len(tasks))
  if not overwrite:
    atomic_files.refuse_existing(
        os.path.join(output_dir, shard_name(split_name, i, num_shards))
        for i in range(num_shards))
  tf.io.gfile.makedirs(output_dir)
  summary = Summary()
  with _atomic_shards(output_dir, split_name, num_shards) as temp_paths, \
      _converted_images(tasks, info, num_workers) as converted, \
      _progress(len(tasks), show_progress) as bar:
    writer, current_shard = None, -1
    try:
      for index, image in enumerate(converted):
        shard = index * num_shards // len(tasks)
        if shard != current_shard:
          if writer is not None:
            writer.close()
          writer = tf.io.TFRecordWriter(temp_paths[shard])
          current_shard = shard
        writer.write(tfrecord_format.encode_example(
            image.image_bytes, image.image_format, image.name, image.label))
        summary.add(image.segments)
        bar.update(1)
    finally:
      if writer is not None:
        writer.close()
  summary.shards = tuple(
      os.path.join(output_dir, shard_name(split_name, i, num_shards))
      for i in range(num_shards))
  stale = sorted(set(tf.io.gfile.glob(os.path.join(
      _escape_glob(output_dir),
      f'{_escape_glob(split_name)}-*-of-*.tfrecord'))) - set(summary.shards))
  if stale:  # from an earlier run with another shard count; not ours to delete
    print(f'cmt-build-data: warning: {len(stale)} older {split_name} shards '
          f'in {output_dir} (e.g. {os.path.basename(stale[0])}) would mix '
          'with these in a glob; remove them', file=sys.stderr)
  return summary


def _escape_glob(text: str) -> str:
  """`text` matched literally by `tf.io.gfile.glob` (`*?[` escaped)."""
  return ''.join(f'[{c}]' if c in '*?[' else c for c in text)


def default_split_name(panoptic_json: str) -> str:
  # panoptic_val2017.json -> val2017
  stem = os.path.splitext(os.path.basename(panoptic_json))[0]
  return stem[len('panoptic_'):] if stem.startswith('panoptic_') else stem

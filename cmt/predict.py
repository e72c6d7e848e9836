"""Images -> panoptic predictions (`cmt-predict`, whose command line is
`cmt.tools.predict`), from a SavedModel of `cmt-export` or a config and
checkpoint, on CPU.

For each image `<name>.<ext>`, `predict_files` writes under the output
folder `overlay/<name>.png` (segments coloured and named),
`panoptic/<name>.png` (COCO panoptic PNG) and `segments/<name>.json`, then
`panoptic.json` (COCO panoptic JSON of all of them). An image that cannot
be read or predicted is reported by name on one line and the others are
still predicted. Each file is written under a temporary name and renamed
when complete; paths may be local or URLs (gs://...).
"""

import dataclasses
import io
import json
import os
import sys
from typing import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
import tqdm

from cmt import atomic_files
from cmt import cli
from cmt import file_io
from cmt.evaluation import coco_panoptic_format

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                    '.webp')


@dataclasses.dataclass
class Predictor:
  """A serving function (uint8 [H, W, C] -> output dict, `cmt.export`) and
  the dataset it predicts."""
  serve: Callable
  dataset_info: object  # cmt.data.dataset_info.DatasetInfo
  # Keeps the object `serve` is a method of alive (tf.function methods hold
  # their instance weakly).
  owner: object = None

  def __call__(self, image: np.ndarray) -> dict:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    outputs = self.serve(image=tf.constant(image, tf.uint8))
    return {k: v.numpy() for k, v in outputs.items()}


def dataset_info_of(metadata: dict):
  """The `metadata` signature's tensors -> a DatasetInfo."""
  from cmt.data import dataset_info as dataset_info_lib  # pylint: disable=g-import-not-at-top
  names = [n.decode('utf-8') for n in metadata['class_names'].numpy()]
  ids = metadata['category_ids'].numpy().tolist()
  things = metadata['is_thing'].numpy().tolist()
  colors = metadata['colors'].numpy().tolist()
  categories = [{'id': ids[i], 'name': names[i], 'isthing': things[i],
                 'color': colors[i]} for i in range(1, len(names))]
  info = dataset_info_lib.from_categories('saved_model', categories)
  return dataclasses.replace(
      info, label_divisor=int(metadata['label_divisor'].numpy()))


def load_saved_model(path: str) -> Predictor:
  """A `cmt-export` SavedModel as a Predictor."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from cmt import export  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.exists(os.path.join(path, export.SAVED_MODEL_FILE)):
    raise ValueError(f'--model={path}: not a SavedModel directory (no '
                     f'{export.SAVED_MODEL_FILE})')
  try:
    loaded = tf.saved_model.load(path)
  except Exception as error:  # pylint: disable=broad-except
    # A corrupt file raises anything from DecodeError to OpError.
    raise ValueError(f'--model={path}: cannot load the SavedModel: '
                     f'{cli.one_line(getattr(error, "message", error))}'
                     ) from None
  signatures = loaded.signatures
  for name in (export.SERVING_SIGNATURE, export.METADATA_SIGNATURE):
    if name not in signatures:
      raise ValueError(f'--model={path}: no {name!r} signature; export it '
                       'with cmt-export')
  return Predictor(signatures[export.SERVING_SIGNATURE],
                   dataset_info_of(signatures[export.METADATA_SIGNATURE]()),
                   owner=loaded)


def load_checkpoint(options, checkpoint_path: str) -> Predictor:
  """Config + checkpoint as a Predictor (the same serving function)."""
  from cmt import export  # pylint: disable=g-import-not-at-top
  inference = export.build_inference(options, checkpoint_path)
  return Predictor(inference.serve, inference.dataset_info, owner=inference)


def list_inputs(spec: str) -> list[str]:
  """IMAGE, DIR (its images, sorted) or GLOB -> image paths (local or
  URLs)."""
  gfile = file_io.gfile()
  if gfile.isdir(spec):
    paths = [os.path.join(spec, name) for name in sorted(gfile.listdir(spec))
             if name.lower().endswith(IMAGE_EXTENSIONS)]
  elif gfile.exists(spec):
    paths = [spec]
  else:
    paths = sorted(p for p in gfile.glob(spec) if not gfile.isdir(p))
  if not paths:
    raise ValueError(f'--input={spec}: no image found')
  by_name = {}
  for path in paths:
    name = output_name(path)
    if name in by_name:
      raise ValueError(
          f'--input={spec}: {by_name[name]} and {path} would both be written '
          f'as {name!r}; rename one or predict them separately')
    by_name[name] = path
  return paths


def output_name(path: str) -> str:
  """The name the outputs of image `path` take: its file name stem."""
  return os.path.splitext(os.path.basename(path))[0]


def output_paths(output_dir: str, paths: Sequence[str]) -> list[str]:
  """Every file `predict_files` writes for `paths`."""
  outputs = [os.path.join(output_dir, coco_panoptic_format.PANOPTIC_JSON)]
  for path in paths:
    name = output_name(path)
    outputs += [os.path.join(output_dir, 'overlay', name + '.png'),
                os.path.join(output_dir, coco_panoptic_format.PNG_FOLDER,
                             name + '.png'),
                os.path.join(output_dir, 'segments', name + '.json')]
  return outputs


def read_image(path: str) -> np.ndarray:
  """uint8 [H, W, C], C in 1..4 (gray, gray + alpha, RGB, RGBA as stored;
  palette and other modes converted to RGB / RGBA). ValueError naming the
  file when it cannot be decoded."""
  try:
    data = file_io.read_bytes(path)
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      if image.format == 'JPEG' and image.mode in ('L', 'RGB'):
        return _decode_as_the_pipeline_does(data)
      if image.mode not in ('L', 'LA', 'RGB', 'RGBA'):
        has_alpha = 'A' in image.mode or 'transparency' in image.info
        image = image.convert('RGBA' if has_alpha else 'RGB')
      array = np.asarray(image, np.uint8)
  except (OSError, UnidentifiedImageError, SyntaxError) as error:
    raise ValueError(f'{path}: cannot read image: {error}') from None
  if array.ndim == 2:
    array = array[..., None]
  if min(array.shape[:2]) < 1:
    raise ValueError(f'{path}: empty image {array.shape}')
  return array


def _decode_as_the_pipeline_does(data: bytes) -> np.ndarray:
  """JPEGs: TensorFlow's decoder, as in training and evaluation
  (`tfrecord_format.decode_image`), so predictions match the evaluation's."""
  from cmt.data import tfrecord_format  # pylint: disable=g-import-not-at-top
  return tfrecord_format.decode_image(data).numpy()


def segments_json(annotation: dict, outputs: dict, info,
                  size: tuple[int, int]) -> dict:
  """The writer's COCO annotation with class names and scores added."""
  from cmt.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  divisor = info.label_divisor
  scores = evaluator.segment_scores_of(outputs['segment_labels'],
                                       outputs['segment_scores'])
  segments = []
  for segment in annotation['segments_info']:
    class_id = info.to_class_id(segment['category_id'])
    label = class_id * divisor + segment['id'] % divisor
    category = info.categories[class_id - 1]
    segments.append({**segment, 'category_name': category.name,
                     'isthing': int(category.is_thing),
                     'score': round(float(scores.get(label, 0.0)), 6)})
  return {'image_id': annotation['image_id'],
          'file_name': annotation['file_name'],
          'height': size[0], 'width': size[1], 'segments_info': segments}


def predict_files(predictor: Predictor, paths: Sequence[str],
                  output_dir: str, progress: bool = True) -> list[str]:
  """Writes the outputs of the module docstring; returns the errors (one
  line per file that failed)."""
  from cmt.vis import drawing  # pylint: disable=g-import-not-at-top
  info = predictor.dataset_info
  class_colors = np.array(info.class_colors, np.uint8)
  folders = {name: os.path.join(output_dir, name)
             for name in ('overlay', 'segments')}
  writer = coco_panoptic_format.CocoPanopticWriter(
      os.path.join(output_dir, coco_panoptic_format.PANOPTIC_JSON),
      os.path.join(output_dir, coco_panoptic_format.PNG_FOLDER), info)
  errors = []
  for path in tqdm.tqdm(paths, desc='cmt-predict', unit='image',
                        disable=not progress, file=sys.stderr):
    name = output_name(path)
    try:
      image = read_image(path)
      outputs = predictor(image)
    except Exception as error:  # pylint: disable=broad-except
      if not cli.is_user_error(error):
        raise
      if path not in cli.message_of(error):
        error = ValueError(f'{path}: {cli.message_of(error)}')
      errors.append(cli.report('cmt-predict', error))
      continue
    panoptic = outputs['panoptic']
    annotation = writer.add(name, panoptic)
    rgb = image[..., :3] if image.shape[-1] >= 3 else np.repeat(
        image[..., :1], 3, axis=-1)
    overlay = drawing.panoptic_overlay(rgb, panoptic, class_colors,
                                       info.class_names, info.label_divisor)
    with atomic_files.open_atomic(
        os.path.join(folders['overlay'], name + '.png'), 'wb') as f:
      overlay.save(f, format='PNG')
    content = segments_json(annotation, outputs, info, panoptic.shape)
    with atomic_files.open_atomic(
        os.path.join(folders['segments'], name + '.json')) as f:
      f.write(json.dumps(content, indent=1))
  writer.write_json()
  return errors

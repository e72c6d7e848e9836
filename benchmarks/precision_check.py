"""Float32 against mixed_bfloat16 on DeepLab2's MaX-DeepLab-S: what the
precision changes in the outputs and in the panoptic map, beside what one
ulp of input noise changes in float32 (the model's own conditioning).

The model is the shrunk MaX-DeepLab-S that DeepLab2 wrote
(../shared/deeplab2/max_deeplab_s, read into ours as
tests/deeplab2_import/ does, with the config
tests/deeplab2_import/max_deeplab_s_fixture.textproto). It is built twice
from the same checkpoint, under the Keras policies `float32` and
`mixed_bfloat16` (float32 variables, bfloat16 compute, as a config with
`precision: MIXED_BFLOAT16` trains and evaluates), and run in inference
mode, model and post-processing in one tf.function as the evaluation step
runs them (graph mode; with --xla compiled by XLA, as the TPU step is), on:

  - the fixture image (DeepLab2's input, 129 x 129);
  - each real COCO image of ../shared/data/coco_panoptic_sample, through
    the evaluation preprocessing of the config (resized into the 129 x 129
    crop with its aspect ratio, padded with the mean), as `cmt-train
    --mode=eval` feeds it.

Each is compared with the float32 run of the same image:

  bfloat16        the mixed_bfloat16 model on the same input;
  1-ulp noise     the float32 model on the input with every value moved one
                  ulp up or down at random (the worst of --noise_draws
                  draws): the chaos baseline. A random-weight network can
                  be so ill-conditioned that this alone moves its outputs;
                  precision matters where bfloat16 changes more than that.

Columns: the largest |difference| of the mask logits [h, w, N] (and its
mean, "mask mean"), of the class
logits [N, C + 1] and the semantic logits; the panoptic map (post-processing
of the config's evaluator_options): pixels whose panoptic id differs in the
crop's valid region and at the image's original size (the prediction
resized back as the evaluator does before PQ), and whether the set of
segments (panoptic ids) differs.

  python benchmarks/precision_check.py [--noise_draws 3] [--threads 1] [--xla]
"""

import argparse
import dataclasses
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / 'shared'
FIXTURE_CONFIG = (REPO_ROOT / 'tests' / 'deeplab2_import' /
                  'max_deeplab_s_fixture.textproto')
PRECISIONS = ('FLOAT32', 'MIXED_BFLOAT16')


@dataclasses.dataclass
class Sample:
  """One input: the padded crop, its valid size and the original size."""
  name: str
  image: 'np.ndarray'  # float32 [H, W, 3], 0..255
  valid: tuple
  original: tuple


@dataclasses.dataclass
class Result:
  """What one forward pass gives, as numpy (float32 logits)."""
  mask_logits: 'np.ndarray'
  class_logits: 'np.ndarray'
  semantic_logits: 'np.ndarray'
  panoptic_crop: 'np.ndarray'  # the valid region
  panoptic_original: 'np.ndarray'


def load_options(precision: str):
  from cmt import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.load_config(
      str(FIXTURE_CONFIG), params={},
      overrides=[f'trainer_options.solver_options.precision={precision}'])


def build_model(options, info, checkpoint: str):
  """The fixture model under the options' precision, DeepLab2's weights in
  every variable."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from cmt.model import builder
  from cmt.deeplab2 import checkpoint as deeplab2_checkpoint
  crop = options.eval_dataset_options.crop_size[0]
  model = builder.build_and_initialise(options, info, crop)
  reader = tf.train.load_checkpoint(checkpoint)
  plan = deeplab2_checkpoint.plan(model, reader, options, info)
  if plan.left_at_init or plan.mismatched or len(plan.mapped) != len(
      model.variables):
    raise ValueError(f'{checkpoint}: does not fill the fixture model')
  deeplab2_checkpoint.apply(plan, reader)
  return model


def eval_preprocess(image, dataset_options) -> Sample:
  """uint8 [H0, W0, 3] -> the evaluation input (`cmt.data.eval_inputs`)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from cmt.data import pipeline
  from cmt.data import preprocessing
  original = tuple(int(s) for s in image.shape[:2])
  size = preprocessing.resized_size(tf.constant(original),
                                    *pipeline.resize_range(dataset_options,
                                                           False))
  padded = preprocessing.pad_image_to_crop(
      preprocessing.resize_image(tf.cast(image, tf.float32), size),
      tuple(dataset_options.crop_size))
  return padded.numpy(), tuple(int(s) for s in size.numpy()), original


def load_samples(fixture: pathlib.Path, coco: pathlib.Path, dataset_options):
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf
  samples = []
  image = np.load(fixture / 'input_image.npy')
  samples.append(Sample('fixture image', *eval_preprocess(image,
                                                          dataset_options)))
  for path in sorted((coco / 'images').glob('*.jpg')):
    image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3)
    samples.append(Sample(f'COCO {path.stem}',
                          *eval_preprocess(image.numpy(), dataset_options)))
  return samples


def forward_fn(model, options, info, jit_compile: bool):
  """Image batch -> (model outputs, post-processed predictions), as the
  evaluation step runs them (`cmt.trainer.eval_loop`)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from cmt.model import post_processing

  def forward(images):
    outputs = model(images, training=False)
    return outputs, post_processing.post_process(
        outputs, options.evaluator_options, info, images.shape[1:3])

  return tf.function(forward, jit_compile=jit_compile)


def run(forward, sample: Sample, image) -> Result:
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf
  from cmt import common
  from cmt.data import preprocessing
  outputs, predictions = forward(tf.constant(image[None]))
  height, width = sample.valid
  panoptic = predictions[common.PRED_PANOPTIC][0, :height, :width]
  as_numpy = lambda key: np.asarray(tf.cast(outputs[key], tf.float32))[0]
  return Result(
      mask_logits=as_numpy(common.MASK_LOGITS),
      class_logits=as_numpy(common.CLASS_LOGITS),
      semantic_logits=as_numpy(common.SEMANTIC_LOGITS),
      panoptic_crop=panoptic.numpy(),
      panoptic_original=preprocessing.resize_label(
          panoptic, sample.original).numpy())


def one_ulp_noise(image, rng):
  """Every value one float32 ulp up or down, at random."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  up = rng.random(image.shape) < 0.5
  return np.where(up, np.nextafter(image, np.float32(np.inf)),
                  np.nextafter(image, np.float32(-np.inf))).astype(np.float32)


def compare(reference: Result, other: Result) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  largest = lambda a, b: float(np.abs(a - b).max())
  return {
      'mask': largest(reference.mask_logits, other.mask_logits),
      'mask_mean': float(np.abs(reference.mask_logits -
                                other.mask_logits).mean()),
      'class': largest(reference.class_logits, other.class_logits),
      'semantic': largest(reference.semantic_logits, other.semantic_logits),
      'pixels_crop': int((reference.panoptic_crop !=
                          other.panoptic_crop).sum()),
      'pixels_original': int((reference.panoptic_original !=
                              other.panoptic_original).sum()),
      'segments_differ': (set(np.unique(reference.panoptic_crop)) !=
                          set(np.unique(other.panoptic_crop))),
  }


def worst(rows: list) -> dict:
  """Per column the worst of several comparisons."""
  return {key: (any(r[key] for r in rows) if key == 'segments_differ'
                else max(r[key] for r in rows)) for key in rows[0]}


def print_table(lines: list) -> None:
  print(f'{"input":22s} {"against float32":17s} {"mask":>9s} '
        f'{"mask mean":>9s} {"class":>9s} '
        f'{"semantic":>9s} {"px crop":>13s} {"px original":>15s} '
        f'{"segments":>9s}')
  for name, against, row, crop_pixels, original_pixels in lines:
    print(f'{name:22s} {against:17s} {row["mask"]:9.3g} '
          f'{row["mask_mean"]:9.3g} {row["class"]:9.3g} '
          f'{row["semantic"]:9.3g} '
          f'{row["pixels_crop"]:6d}/{crop_pixels:<6d} '
          f'{row["pixels_original"]:7d}/{original_pixels:<7d} '
          f'{"differ" if row["segments_differ"] else "same":>9s}')


def measure(options, info, checkpoint: str, samples, args) -> dict:
  """precision -> per sample (result, [results with 1-ulp input noise]);
  the noise runs for float32 only."""
  # pylint: disable=g-import-not-at-top
  import numpy as np
  from cmt.trainer import train_lib
  rng = np.random.default_rng(args.seed)
  results = {}
  for precision in PRECISIONS:
    solver = options[precision].trainer_options.solver_options
    with train_lib.precision_policy(solver):
      model = build_model(options[precision], info, checkpoint)
      forward = forward_fn(model, options[precision], info, args.xla)
      draws = args.noise_draws if precision == 'FLOAT32' else 0
      results[precision] = [
          (run(forward, s, s.image),
           [run(forward, s, one_ulp_noise(s.image, rng))
            for _ in range(draws)]) for s in samples]
  return results


def print_scale(results: dict, fixture: pathlib.Path) -> None:
  """The float32 logits' size, and the fixture image's float32 mask logits
  against DeepLab2's own (outputs.npz): the weights were read right."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  float32 = [plain for plain, _ in results['FLOAT32']]
  print('float32: largest |mask logit| ' + ', '.join(
      f'{float(np.abs(r.mask_logits).max()):.3g}' for r in float32) +
        '; largest |class logit| ' + ', '.join(
            f'{float(np.abs(r.class_logits).max()):.3g}' for r in float32))
  deeplab2 = np.load(fixture / 'outputs.npz')['pixel_space_mask_logits'][0]
  print('float32 fixture-image mask logits against DeepLab2\'s outputs.npz: '
        f'largest |difference| {np.abs(float32[0].mask_logits - deeplab2).max():.3g}')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0], epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--fixture', type=pathlib.Path,
                      default=SHARED / 'deeplab2' / 'max_deeplab_s')
  parser.add_argument('--coco', type=pathlib.Path,
                      default=SHARED / 'data' / 'coco_panoptic_sample')
  parser.add_argument('--noise_draws', type=int, default=3)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--xla', action='store_true',
                      help='compile model and post-processing with XLA '
                      '(jit_compile, as on a TPU) instead of graph mode')
  parser.add_argument('--threads', type=int, default=1,
                      help='intra-op threads (0: TensorFlow decides)')
  args = parser.parse_args(argv)
  for path, what in ((args.fixture / 'ckpt', '--fixture'),
                     (args.coco / 'images', '--coco')):
    if not path.is_dir():
      parser.error(f'{what}: no such directory {path}')
  if args.noise_draws < 1:
    parser.error(f'--noise_draws must be >= 1, got {args.noise_draws}')
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf
  from cmt.data import dataset_info as dataset_info_lib
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  checkpoint = tf.train.latest_checkpoint(str(args.fixture / 'ckpt'))
  options = {p: load_options(p) for p in PRECISIONS}
  info = dataset_info_lib.get_dataset_info(
      options['FLOAT32'].eval_dataset_options)
  samples = load_samples(args.fixture, args.coco,
                         options['FLOAT32'].eval_dataset_options)
  results = measure(options, info, checkpoint, samples, args)
  print(f'{checkpoint}, {len(samples)} inputs at crop '
        f'{samples[0].image.shape[0]}, {"XLA" if args.xla else "graph mode"}, '
        f'{args.threads or "default"} intra-op thread(s); '
        f'largest |difference| ("mask mean": mean) against the '
        f'float32 run; "1-ulp noise": worst of {args.noise_draws} draws')
  lines = []
  for sample, (reference, noisy), (bf16, _) in zip(
      samples, results['FLOAT32'], results['MIXED_BFLOAT16']):
    pixels = (reference.panoptic_crop.size, reference.panoptic_original.size)
    lines.append((sample.name, 'mixed_bfloat16', compare(reference, bf16),
                  *pixels))
    lines.append((sample.name, '1-ulp noise (f32)',
                  worst([compare(reference, n) for n in noisy]), *pixels))
  print_table(lines)
  print_scale(results, args.fixture)
  return 0


if __name__ == '__main__':
  sys.exit(main())

"""`cmt-predict`: images -> panoptic predictions, on CPU.

  cmt-predict --model=SAVEDMODEL --input=IMAGE|DIR|GLOB --output_dir=O
  cmt-predict --config_file=F --checkpoint_path=C --input=... --output_dir=O

For each image `<name>.<ext>` it writes
  O/overlay/<name>.png    the image with each segment in its own colour and
                          class names where they fit
  O/panoptic/<name>.png   COCO panoptic PNG (segment id = R + 256 G + 256^2 B,
                          id = category_id * label_divisor + instance)
  O/segments/<name>.json  {image_id, file_name, height, width,
                          segments_info: [{id, category_id, category_name,
                          isthing, iscrowd, area, bbox, score}]}
and at the end O/panoptic.json, the COCO panoptic JSON of all of them
(what `cmt-evaluate` reads). Everything is at the input image's size.

An image that cannot be read or predicted is reported by name on one line;
the others are still predicted and the exit status is 1. Two inputs with
the same name (x.jpg, x.png) are refused up front, and outputs that exist
already are replaced only with --overwrite. Each file is written under a
temporary name and renamed when complete. Every path (--model, --input,
--output_dir, --config_file, --checkpoint_path) may be local or a URL
(gs://...).
"""

import os
from typing import Optional, Sequence

from cmt import atomic_files
from cmt import cli
from cmt import predict
from cmt.tools import flags


@cli.command('cmt-predict')
def main(argv: Optional[Sequence[str]] = None) -> int:
  os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')  # runs on CPU
  parser = cli.ArgumentParser(prog='cmt-predict', description=__doc__)
  parser.add_argument('--model', help='SavedModel written by cmt-export')
  flags.add_model_flags(parser, required=False)
  parser.add_argument('--input', required=True, help='IMAGE, DIR or GLOB')
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--overwrite', action='store_true',
                      help='replace outputs that exist already')
  parser.add_argument('--no_progress', action='store_true',
                      help='no progress bar')
  args = parser.parse_args(argv)
  if bool(args.model) == bool(args.config_file):
    parser.error('give either --model or --config_file (with '
                 '--checkpoint_path)')
  if args.config_file and not args.checkpoint_path:
    parser.error('--config_file needs --checkpoint_path')
  paths = predict.list_inputs(args.input)
  if not args.overwrite:
    atomic_files.refuse_existing(predict.output_paths(args.output_dir, paths))
  predictor = (predict.load_saved_model(args.model) if args.model
               else predict.load_checkpoint(flags.load_model_options(args),
                                            args.checkpoint_path))
  errors = predict.predict_files(predictor, paths, args.output_dir,
                                 progress=not args.no_progress)
  done = len(paths) - len(errors)
  print(f'{done} of {len(paths)} image(s) predicted into {args.output_dir}')
  return 1 if errors else 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

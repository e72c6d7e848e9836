"""`cmt-visualize`: the paper's pictures of the clustering for one image.

  cmt-visualize --config_file=F --checkpoint_path=C --input=IMAGE --output_dir=O
      [--overwrite]

Writes O/<name>_fig5_clustering.png (Fig. 5: the clustering result of every
CMT layer) and O/<name>_fig1_cross_attention.png (Fig. 1: the last layer's
memory-to-pixel attention of the highest-scoring centers); what they show:
`cmt.visualize`.
"""

import os
from typing import Optional, Sequence

from cmt import atomic_files
from cmt import cli
from cmt import predict
from cmt import visualize
from cmt.tools import flags


@cli.command('cmt-visualize')
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = cli.ArgumentParser(prog='cmt-visualize', description=__doc__)
  flags.add_model_flags(parser, required=True)
  parser.add_argument('--input', required=True, help='one image file')
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--overwrite', action='store_true',
                      help='replace figures that exist already')
  args = parser.parse_args(argv)
  name = os.path.splitext(os.path.basename(args.input))[0]
  if not args.overwrite:
    atomic_files.refuse_existing(visualize.figure_paths(args.output_dir, name))
  image = predict.read_image(args.input)
  from cmt import export  # pylint: disable=g-import-not-at-top  (TensorFlow)
  inference = export.build_inference(flags.load_model_options(args),
                                     args.checkpoint_path)
  paths = visualize.visualize(inference, image, args.output_dir, name)
  print('\n'.join(paths))
  return 0


run = cli.entry_point(main)


if __name__ == '__main__':
  run()

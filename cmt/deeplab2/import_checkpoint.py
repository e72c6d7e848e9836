"""A DeepLab2 checkpoint -> a checkpoint of ours (`cmt-import-deeplab2`,
whose command line is `cmt.tools.import_deeplab2`).

PATH is a checkpoint prefix or a directory (its latest checkpoint) in any
of DeepLab2's layouts (its trainer's, or a backbone alone, plain or TF Model
Garden; `cmt.deeplab2.checkpoint`). The model of the config is
built, every variable DeepLab2 has a counterpart for is filled from it, and
the result is written under DIR as `cmt-train` writes checkpoints, so that
`initial_checkpoint: DIR`, `cmt-export --checkpoint_path=DIR` and
`cmt-predict --checkpoint_path=DIR` read it. The mapping report (printed,
and saved as DIR/mapping_report.txt) lists the variables mapped, ours left
at initialisation with the reason, and the DeepLab2 variables not used.

What is converted follows the layout: every variable from a trainer
checkpoint, the backbone of every stack (both stacks of a Recursive Feature
Network from the same backbone) from a backbone checkpoint. Strict, as a
warm start: a variable in that scope that the checkpoint lacks, or whose
shape differs from its DeepLab2 counterpart (the config does not describe
the checkpoint's network), is refused, naming the first and the count;
backbone blocks the checkpoint lacks on purpose (an Axial-ResNet-104 from
Axial-ResNet-50 weights) are declared by
`model_options.initial_checkpoint_num_blocks` and start from
initialisation. DIR is written under a temporary name and renamed when
complete; an existing non-empty DIR is replaced only with --overwrite.
"""

import tensorflow as tf

from cmt import atomic_files
from cmt.data import dataset_info as dataset_info_lib
from cmt.deeplab2 import checkpoint as deeplab2_checkpoint
from cmt.model import builder
from cmt.trainer import checkpoints

REPORT_NAME = 'mapping_report.txt'


def report_lines(plan: deeplab2_checkpoint.Plan, source: str) -> list:
  per_stack = ', '.join(f'stack {k + 1}: {n}'
                        for k, n in enumerate(plan.backbone_per_stack()))
  lines = [f'# {source}: {plan.layout.value}',
           f'# mapped: {len(plan.mapped)}',
           f'# backbone variables mapped: {per_stack or "none"}',
           f'# left at initialisation: {len(plan.left_at_init)} (declared '
           f'absent by {checkpoints.PARTIAL_START_FIELD}: '
           f'{len(plan.declared_absent())})',
           f'# DeepLab2 variables not used: {len(plan.unused)}']
  lines += [f'mapped {path} <- {name} ({convert.describe})'
            for path, _, name, convert in plan.mapped]
  lines += [f'initial {path}: {reason}' for path, reason in plan.left_at_init]
  lines += [f'unused {name}' for name in plan.unused]
  return lines


def _check_output_dir(output_dir: str, overwrite: bool):
  if tf.io.gfile.exists(output_dir):
    if not tf.io.gfile.isdir(output_dir):
      raise FileExistsError(f'--output_dir={output_dir}: exists and is not a '
                            'directory')
    if tf.io.gfile.listdir(output_dir) and not overwrite:
      raise FileExistsError(f'--output_dir={output_dir}: not empty (pass '
                            '--overwrite to replace it)')


def convert(options, checkpoint_path: str, output_dir: str,
            overwrite: bool = False, print_fn=print) -> deeplab2_checkpoint.Plan:
  """Builds the model of `options`, fills it from the DeepLab2 checkpoint
  and writes it to `output_dir` (see the module docstring)."""
  _check_output_dir(output_dir, overwrite)  # before any work
  resolved = checkpoints.resolve_checkpoint(checkpoint_path,
                                            '--deeplab2_checkpoint')
  try:
    reader = checkpoints.read_checkpoint(resolved)
  except (tf.errors.NotFoundError, tf.errors.DataLossError) as error:
    raise ValueError(f'--deeplab2_checkpoint={checkpoint_path}: cannot read: '
                     f'{error.message}') from None
  info = dataset_info_lib.get_dataset_info(options.eval_dataset_options)
  # The variables do not depend on the crop: build at the smallest one.
  model = builder.build_and_initialise(options, info)
  try:
    plan = deeplab2_checkpoint.plan(model, reader, options, info)
  except ValueError as error:
    raise ValueError(f'--deeplab2_checkpoint={checkpoint_path}: {error}'
                     ) from None
  scope = ('every variable' if plan.layout ==
           deeplab2_checkpoint.Layout.TRAINER else 'every backbone variable')
  problem = deeplab2_checkpoint.refusal(
      plan, f'({scope}) that a {plan.layout.value} gives', strict_shapes=True)
  if problem:
    raise ValueError(f'--deeplab2_checkpoint={checkpoint_path}: {problem}')
  deeplab2_checkpoint.apply(plan, reader)
  lines = report_lines(plan, resolved)
  _write(model, output_dir, overwrite, '\n'.join(lines) + '\n')
  for line in lines:
    print_fn(line)
  return plan


def _write(model, output_dir: str, overwrite: bool, report: str):
  """Checkpoint + report under a temporary name, then moved to DIR with the
  `checkpoint` file last (`atomic_files.atomic_directory`)."""
  with atomic_files.atomic_directory(output_dir, overwrite,
                                     last_file='checkpoint') as temporary:
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         temporary, max_to_keep=1)
    manager.save(checkpoint_number=0)
    with tf.io.gfile.GFile(f'{temporary}/{REPORT_NAME}', 'w') as f:
      f.write(report)

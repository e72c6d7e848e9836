#!/usr/bin/env bash
# Installs cmt-deeplab on a Cloud TPU VM with tensorflow-tpu as the one
# TensorFlow, into the Python that runs this script (activate a virtual
# environment first, or set PYTHON).
#
#   bash tools/install_tpu_vm.sh            # from the repository root
#
# setup.py, tf-keras and tf-models-official require the `tensorflow`
# distribution; on a TPU VM that is `tensorflow-tpu` (the same `tensorflow`
# module, built with TPU support, plus `libtpu`), and a plain
# `pip install -e .` would add a second TensorFlow beside it. So:
#   1. tools/tpu_vm_requirements.txt: tensorflow-tpu, the libtpu it was built
#      against, and every other requirement of cmt-deeplab and of the
#      packages below, resolved by pip;
#   2. tools/tpu_vm_no_deps.txt and cmt-deeplab itself, with --no-deps.
# `pip check` then names `tensorflow` as missing for those packages; that is
# expected, the module is there (tensorflow-tpu). The last step checks, from
# the installed metadata, that tensorflow-tpu is the one TensorFlow
# distribution. It does not import TensorFlow; see the README ("Train on a
# Cloud TPU pod") for the first import on the VM.
#
# tools/check_tpu_vm_install.py runs this script in a new virtual
# environment and trains 2 steps with the result.
set -euo pipefail

PYTHON=${PYTHON:-python3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$PYTHON" -m pip install --upgrade pip
"$PYTHON" -m pip install -r "$REPO/tools/tpu_vm_requirements.txt"
"$PYTHON" -m pip install --no-deps -r "$REPO/tools/tpu_vm_no_deps.txt"
"$PYTHON" -m pip install --no-deps -e "$REPO"

"$PYTHON" - <<'PY'
import importlib.metadata as metadata
import sys

names = {d.metadata['Name'].lower().replace('_', '-')
         for d in metadata.distributions()}
tensorflows = sorted(n for n in names
                     if n == 'tensorflow' or n.startswith('tensorflow-')
                     and n.split('-', 1)[1] in ('cpu', 'gpu', 'tpu', 'intel'))
if tensorflows != ['tensorflow-tpu']:
  sys.exit('install_tpu_vm.sh: error: TensorFlow distributions installed: '
           f'{tensorflows}; expected only tensorflow-tpu')
print('tensorflow-tpu', metadata.version('tensorflow-tpu'),
      'libtpu', metadata.version('libtpu'))
PY

"""Installs CMT-DeepLab under the single import namespace `cmt`.

The repository keeps DeepLab2's top-level folders (`protos/`, `trainer/`,
`evaluation/`, `configs/`) for readers, but they install as `cmt.protos`,
`cmt.trainer`, `cmt.evaluation` and `cmt.configs`, so nothing generic lands
in site-packages.
"""

import os
import runpy

import setuptools

# Top-level folder -> the package it installs as.
PACKAGE_ROOTS = {
    'cmt': 'cmt',
    'cmt.protos': 'protos',
    'cmt.trainer': 'trainer',
    'cmt.evaluation': 'evaluation',
}


def find_packages():
  """Every folder with an __init__.py below each root, as dotted names."""
  packages, package_dir = [], {}
  for package, root in PACKAGE_ROOTS.items():
    for folder, _, files in os.walk(root):
      if '__init__.py' not in files:
        continue
      relative = os.path.relpath(folder, root)
      name = package if relative == '.' else (
          package + '.' + relative.replace(os.sep, '.'))
      packages.append(name)
      package_dir[name] = folder
  return packages, package_dir


PACKAGES, PACKAGE_DIR = find_packages()
# The console scripts, listed once (a file that imports nothing).
COMMANDS = runpy.run_path(os.path.join('cmt', 'tools', 'commands.py'))
# Configs are data: installed so `cmt-paper-tables` finds them anywhere.
PACKAGES.append('cmt.configs')
PACKAGE_DIR['cmt.configs'] = 'configs'

setuptools.setup(
    name='cmt-deeplab',
    version='0.1.0',
    description=('CMT-DeepLab: Clustering Mask Transformers for panoptic '
                 'segmentation (CVPR 2022), in TensorFlow'),
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10,<3.13',
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={
        'cmt.protos': ['*.proto', '*.pyi'],
        'cmt.configs': ['**/*.textproto'],
    },
    include_package_data=False,
    install_requires=[
        # tf-models-official 2.20 pins TensorFlow 2.20 (no 2.21 yet).
        'tensorflow~=2.20.0',
        'tf-keras~=2.20.0',
        'tf-models-official~=2.20.0',
        # tensorflow-model-optimization (from tf-models-official) caps absl.
        'absl-py>=1.0,<2',
        # The committed *_pb2 modules were generated for protobuf 7.35.
        'protobuf>=7.35.1,<8',
        'numpy>=1.26,<3',
        'pycocotools>=2.0.8',
        'Pillow>=10',
        'tqdm>=4.60',
    ],
    extras_require={
        'test': [
            'pytest>=8',
            # `make test` spreads the tests over TEST_WORKERS processes:
            # tracing and XLA compilation are single-threaded.
            'pytest-xdist>=3.5',
            'scipy>=1.11',
            # Regenerates the protos in the sync test.
            'grpcio-tools==1.85.1',
        ],
    },
    entry_points={'console_scripts': COMMANDS['console_scripts']()},
)

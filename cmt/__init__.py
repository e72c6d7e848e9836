"""CMT-DeepLab: Clustering Mask Transformers for panoptic segmentation.

Importing `cmt` is cheap (no TensorFlow); the subpackages import what they
need: `cmt.config`, `cmt.model`, `cmt.data`, `cmt.trainer`,
`cmt.evaluation`, `cmt.protos`.
"""

__version__ = '0.1.0'

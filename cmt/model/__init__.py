"""CMT-DeepLab models: Axial-ResNet backbones, dual-path / clustering mask
transformer layers, heads, and the builder (`cmt.model.builder`).

This package module imports no TensorFlow so that light tools (`cmt-config
validate`) stay fast; import the submodules for the model itself.
"""

"""Keras layers of MaX-DeepLab and CMT-DeepLab (axial attention, residual
blocks, dual-path / clustering mask transformer layers, reference masks)."""

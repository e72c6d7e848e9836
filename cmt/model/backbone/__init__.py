"""Axial-ResNet backbones (Axial-DeepLab / MaX-DeepLab)."""

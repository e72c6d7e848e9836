"""Orbit trainer, strategies, optimiser and the `cmt-train` command."""

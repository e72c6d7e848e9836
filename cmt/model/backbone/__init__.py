"""Backbones: the contract every backbone meets (`contract`) and the
builders by name (`builders`)."""

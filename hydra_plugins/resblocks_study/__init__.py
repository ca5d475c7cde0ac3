"""Hydra plugins of resblocks (Hydra finds plugins only under the ``hydra_plugins`` namespace package)."""

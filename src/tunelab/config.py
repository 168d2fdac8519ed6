"""OmegaConf resolvers and configuration errors shared by every entry point."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the keys and what was expected."""


def project_root() -> Path:
    """The directory results are anchored to: $TUNELAB_ROOT (set by train.py) or the cwd."""
    return Path(os.environ.get("TUNELAB_ROOT", os.getcwd())).resolve()


def _world_asset(name: str) -> str:
    from tunelab.world import asset_path

    return str(asset_path(name))


def register_resolvers() -> None:
    """Register `${world:NAME}`, `${mul:A,B}` and `${project_root:}` once per process."""
    resolvers = {
        "world": _world_asset,
        "mul": lambda a, b: a * b,
        "project_root": lambda: str(project_root()),
        # Fused AdamW unscales inside its kernel: Lightning refuses it with mixed precision + clipping.
        "fused_ok": lambda precision, clip: not (str(precision).endswith("-mixed") and bool(clip)),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)

"""OmegaConf resolvers and configuration errors shared by every entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

# The shipped configs: package data (a link to the repository's conf/ in a source checkout).
PACKAGE_CONF = Path(__file__).resolve().parent.parent / "conf"


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the keys and what was expected."""


def instantiate_clearly(node: Any, errors: tuple[type[BaseException], ...] = (ConfigError,)) -> Any:
    """`hydra.utils.instantiate`, re-raising a (nested) constructor's `errors` as themselves.

    Hydra wraps every constructor error in InstantiationException, burying the one clear message
    (and its type) that the constructor wrote.
    """
    try:
        return instantiate(node)
    except InstantiationException as err:
        cause: BaseException | None = err
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, errors):
            raise cause from None
        raise


def project_root() -> Path:
    """The directory results are anchored to: $TUNELAB_ROOT (set by train.py) or the cwd."""
    return Path(os.environ.get("TUNELAB_ROOT", os.getcwd())).resolve()


def _fused_adamw_ok(precision: object, clip: object) -> bool:
    """Fused AdamW on CUDA, where it is the fast path; not under mixed precision with clipping,
    which Lightning cannot combine with it. On CPU the plain loop keeps the exact float operations
    (and so the numbers) of earlier runs; the fused CPU kernel rounds differently."""
    import torch

    return torch.cuda.is_available() and not (str(precision).endswith("-mixed") and bool(clip))


def register_resolvers() -> None:
    """Register `${mul:A,B}`, `${project_root:}` and `${fused_ok:...}` once per process (the tiny
    world registers its own `${world:NAME}`: tunelab.world.register_world_resolver)."""
    resolvers = {
        "mul": lambda a, b: a * b,
        "project_root": lambda: str(project_root()),
        # Fused AdamW unscales inside its kernel: Lightning refuses it with mixed precision + clipping.
        "fused_ok": _fused_adamw_ok,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)

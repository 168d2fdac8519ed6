"""OmegaConf resolvers and configuration errors shared by every entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the keys and what was expected."""


class DataError(ValueError):
    """A malformed data file or record; the message names the file, line or record, and field."""


# The errors a user fixes in their command or files: one line on stderr and exit 2, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, DataError)


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


def _world_asset(name: str) -> str:
    from tunelab.world import asset_path

    return str(asset_path(name))


def _fused_adamw_ok(precision: object, clip: object) -> bool:
    """Fused AdamW on CUDA, where it is the fast path; not under mixed precision with clipping,
    which Lightning cannot combine with it. On CPU the plain loop keeps the exact float operations
    (and so the numbers) of earlier runs; the fused CPU kernel rounds differently."""
    import torch

    return torch.cuda.is_available() and not (str(precision).endswith("-mixed") and bool(clip))


def register_resolvers() -> None:
    """Register `${world:NAME}`, `${mul:A,B}` and `${project_root:}` once per process."""
    resolvers = {
        "world": _world_asset,
        "mul": lambda a, b: a * b,
        "project_root": lambda: str(project_root()),
        # Fused AdamW unscales inside its kernel: Lightning refuses it with mixed precision + clipping.
        "fused_ok": _fused_adamw_ok,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)

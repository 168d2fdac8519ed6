"""OmegaConf resolvers and configuration errors shared by every entry point."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

# The shipped configs: package data (a link to the repository's conf/ in a source checkout).
PACKAGE_CONF = Path(__file__).resolve().parent.parent / "conf"


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


def _fused_adamw_ok(precision: object, clip: object) -> bool:
    """Fused AdamW on CUDA, where it is the fast path; not under mixed precision with clipping,
    which Lightning cannot combine with it. On CPU the plain loop keeps the exact float operations
    (and so the numbers) of earlier runs; the fused CPU kernel rounds differently."""
    import torch

    return torch.cuda.is_available() and not (str(precision).endswith("-mixed") and bool(clip))


SAFE_NAME = re.compile(r"[^A-Za-z0-9._=,+-]+")


def job_dirname(num: object, overrides: object, max_chars: int = 60) -> str:
    """A sweep job's directory name: `<num>_<overrides>` made safe and short.

    Hydra's `override_dirname` holds every override verbatim: paths nest folders ('/') and long
    sweeps exceed the 255-byte file-name limit ("File name too long" before any job runs). Unsafe
    characters become '-'; a name longer than `max_chars` keeps its start plus a hash of the whole.
    The full overrides stay in each job's metrics.json (`overrides`) and config.yaml.
    """
    text = str(overrides or "")
    safe = SAFE_NAME.sub("-", text).strip("-")
    if len(safe) > max_chars or (safe != text and text):
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        safe = f"{safe[: max_chars - 9].rstrip('-')}-{digest}"
    return f"{num}_{safe}" if safe else str(num)


def register_resolvers() -> None:
    """Register `${mul:A,B}`, `${project_root:}` and `${fused_ok:...}` once per process (the tiny
    world registers its own `${world:NAME}`: tunelab.world.register_world_resolver)."""
    resolvers = {
        "mul": lambda a, b: a * b,
        "project_root": lambda: str(project_root()),
        # Fused AdamW unscales inside its kernel: Lightning refuses it with mixed precision + clipping.
        "fused_ok": _fused_adamw_ok,
        "job_dirname": job_dirname,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)

"""Logger factories that need more than a Lightning class: W&B with offline fallback."""

from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_has_credentials() -> bool:
    """An API key in the environment or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text()


def wandb_logger(
    save_dir: str,
    project: str,
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    mode: str = "auto",
    job_type: str | None = None,
    extra_tags: list[str] | None = None,
) -> WandbLogger:
    """A W&B logger; `mode="auto"` logs online with credentials and offline without them.

    Offline runs land in `<run dir>/wandb/` and can be uploaded later with `wandb sync`.
    """
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        group=group,
        name=name,
        tags=[t for t in [*(tags or []), *(extra_tags or [])] if t],
        job_type=job_type,  # compare.py: the stage (tune / confirm)
        offline=mode == "offline",
        mode=mode,
        # Configs go to W&B from config.yaml by tunelab, never from the environment.
        settings={"_disable_meta": False, "console": "off"},
    )


def finish_wandb() -> None:
    """Close the active W&B run, so that the next job of a sweep starts its own."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()

"""The tiny world: a shipped tokenizer, a small pretrained Llama and synthetic tasks."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

ASSETS = Path(__file__).parent / "assets"


def asset_path(name: str) -> Path:
    """Path of a shipped tiny-world asset directory (e.g. `tiny-llama`)."""
    path = ASSETS / name
    if not path.exists():
        raise FileNotFoundError(
            f"tiny-world asset {name!r} not found at {path}; rebuild it with "
            "`python scripts/build_tiny_world.py`"
        )
    return path


def register_world_resolver() -> None:
    """`${world:NAME}` in configs: the path of a shipped asset (conf/model/tiny.yaml uses it)."""
    if not OmegaConf.has_resolver("world"):
        OmegaConf.register_new_resolver("world", lambda name: str(asset_path(name)))

"""Load a causal LM and its tokenizer from a local directory or a hub id, one code path."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tunelab.core.config import ConfigError
from tunelab.models.chat_template import load_chat_template
from tunelab.models.gguf_cache import GGUFSource, ensure_converted

SOURCES = ("auto", "hub", "offline")


@dataclass
class LoadedModel:
    """A model with the tokenizer it was trained with."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name_or_path: str


def _torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"model.dtype={name!r} is not a torch dtype (e.g. float32, bfloat16)")
    return dtype


def load_tokenizer(
    name_or_path: str, trust_remote_code: bool = False, chat_template: str | None = None
) -> PreTrainedTokenizerBase:
    """The tokenizer, with a pad token (eos when the tokenizer has none).

    `chat_template` (`model.chat_template`: Jinja text or a file holding it) replaces the
    tokenizer's for every data kind, evaluation and the saved artifact.
    """
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    template = load_chat_template(chat_template, "model.chat_template")
    if template is not None:
        tokenizer.chat_template = template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_local(name_or_path: str) -> None:
    path = Path(name_or_path)
    looks_local = path.is_absolute() or name_or_path.startswith(".")
    if looks_local and not (path / "config.json").exists():
        raise ConfigError(
            f"model.name_or_path={name_or_path!r}: expected a directory with config.json "
            "(an HF model directory) or a hub id such as 'Qwen/Qwen2.5-0.5B'"
        )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all: one TCP connection, no retries (transformers retries an
    unreachable hub for ~25 s before failing). False under HF_HUB_OFFLINE."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_cached(name_or_path: str, revision: str | None = None) -> bool:
    """Whether the hub model's config is already in the local HF cache (usable offline)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name_or_path, "config.json", revision=revision), str)


def resolve_source(
    name_or_path: str, offline: dict | None, source: str = "auto", revision: str | None = None
) -> str:
    """What to load: `name_or_path`, or, for a hub id with an `offline` GGUF copy (`model.offline`)
    when the hub is unreachable and the id is not cached (or `source=offline`), the converted
    directory (see tunelab.models.gguf_cache)."""
    if source not in SOURCES:
        raise ConfigError(f"model.source={source!r}: expected one of {list(SOURCES)}")
    if not offline or source == "hub":
        if source == "offline":
            raise ConfigError("model.source=offline: this model config has no model.offline copy")
        return name_or_path
    if source == "auto" and (Path(name_or_path).is_dir() or hub_cached(name_or_path, revision)):
        return name_or_path
    if source == "auto" and hub_reachable():
        return name_or_path
    local = str(ensure_converted(GGUFSource(**offline)))
    why = "model.source=offline" if source == "offline" else "hub not reachable and not in the HF cache"
    print(f"tunelab: {name_or_path}: {why}; loading its offline copy {local}", flush=True)
    return local


def load_pretrained(
    name_or_path: str,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    revision: str | None = None,
    attn_implementation: str | None = None,
    chat_template: str | None = None,
    offline: dict | None = None,
    source: str = "auto",
    generation: dict | None = None,
) -> LoadedModel:
    """Pretrained weights from a local HF directory or a hub id (`model.name_or_path`).

    `offline` ({package, file, extra}) names a GGUF copy a Python package ships, used when the
    hub id cannot be reached (`source=auto`) or always (`source=offline`); `source=hub` never.
    `generation` is the model config's declared generation facts (max_new_tokens suited to the
    model), read by other configs through interpolation (`objective.generation`); not used here.
    """
    name_or_path = resolve_source(name_or_path, offline, source, revision)
    if Path(name_or_path).is_dir():
        revision = None  # a local copy has no revisions
    _check_local(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path,
        dtype=_torch_dtype(dtype),
        trust_remote_code=trust_remote_code,
        revision=revision,
        attn_implementation=attn_implementation,
    )
    tokenizer = load_tokenizer(name_or_path, trust_remote_code, chat_template)
    return LoadedModel(model=model, tokenizer=tokenizer, name_or_path=name_or_path)


def init_from_config(
    name_or_path: str,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    seed: int = 0,
    chat_template: str | None = None,
    generation: dict | None = None,
) -> LoadedModel:
    """Random weights from a model's config.json (pretraining from scratch, speed tests);
    `generation` as for `load_pretrained` (a config fact other configs read)."""
    _check_local(name_or_path)
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        config, dtype=_torch_dtype(dtype), trust_remote_code=trust_remote_code
    )
    tokenizer = load_tokenizer(name_or_path, trust_remote_code, chat_template)
    return LoadedModel(model=model, tokenizer=tokenizer, name_or_path=name_or_path)

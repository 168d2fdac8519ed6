"""Load a causal LM and its tokenizer from a local directory or a hub id, one code path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tunelab.core.config import ConfigError


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
    """The tokenizer, with a pad token (eos when the tokenizer has none)."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    if chat_template:
        tokenizer.chat_template = chat_template
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


def load_pretrained(
    name_or_path: str,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    revision: str | None = None,
    attn_implementation: str | None = None,
    chat_template: str | None = None,
) -> LoadedModel:
    """Pretrained weights from a local HF directory or a hub id (`model.name_or_path`)."""
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
) -> LoadedModel:
    """Random weights from a model's config.json (pretraining from scratch, speed tests)."""
    _check_local(name_or_path)
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        config, dtype=_torch_dtype(dtype), trust_remote_code=trust_remote_code
    )
    tokenizer = load_tokenizer(name_or_path, trust_remote_code, chat_template)
    return LoadedModel(model=model, tokenizer=tokenizer, name_or_path=name_or_path)

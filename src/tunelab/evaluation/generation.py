"""Greedy batched generation for evaluation: left padding, the KV cache, and a count of the tokens
each row really generated (what tokens/s is computed from)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.models.modes import in_eval_mode
from tunelab.models.stop_tokens import stop_token_ids


def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
) -> tuple[list[str], int]:
    """Greedy completions of `prompts` (batched, left-padded, KV cache), special tokens stripped,
    and how many tokens were generated (each row up to and including its first end token)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    completions: list[str] = []
    generated = 0
    try:
        with in_eval_mode(model):
            stop_ids = stop_token_ids(model, tokenizer)  # not one id: see stop_tokens
            for start in range(0, len(prompts), batch_size):
                enc = tokenizer(
                    prompts[start : start + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(device)
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stop_ids,
                    use_cache=True,
                )
                new_tokens = out[:, enc["input_ids"].shape[1] :]
                completions += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                generated += generated_tokens(new_tokens, stop_ids)
    finally:
        tokenizer.padding_side = side
    return completions, generated


def generated_tokens(new_tokens: torch.Tensor, eos_id: int | list[int] | None) -> int:
    """Tokens each row really generated: up to and including its first end token (`eos_id`: one id
    or several; the rest is padding `generate` adds to finished rows), all of them where none came."""
    if eos_id is None:
        return new_tokens.numel()
    ids = torch.tensor(eos_id if isinstance(eos_id, (list, tuple)) else [eos_id], device=new_tokens.device)
    is_end = torch.isin(new_tokens, ids)
    first_end = torch.where(is_end.any(-1), is_end.int().argmax(-1) + 1, new_tokens.shape[1])
    return int(first_end.sum())

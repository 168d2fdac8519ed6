"""What every objective shares: the output type and token log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from tunelab.core.config import ConfigError
from tunelab.core.constants import IGNORE_INDEX


@dataclass
class ObjectiveOutput:
    """The loss used for backward, its metrics, and how many tokens it was computed on."""

    loss: Tensor
    supervised_tokens: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


class Objective:
    """A training objective: batch -> loss. Subclasses declare their needs as class attributes.

    The training loop reads these attributes and never an objective's name.
    """

    batch_kind: ClassVar[str] = "sft"  # which data module format the objective consumes
    needs_reference: ClassVar[bool] = False  # whether a frozen reference model must run
    precompute_reference: bool = False  # reference log-probs computed once before training

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, model: nn.Module, batch: dict[str, Tensor], reference=None) -> ObjectiveOutput:
        """The loss of a batch; `reference` is the frozen model when `needs_reference` is set."""
        raise NotImplementedError

    def pair_metrics(self, model: nn.Module, batch: dict[str, Tensor], reference=None) -> dict[str, Tensor]:
        """Scores of a held-out preference batch: by default the training metrics and the loss."""
        out = self(model, batch, reference)
        return {**out.metrics, "loss": out.loss.detach()}

    def attach_tokenizer(self, tokenizer) -> None:
        """Receive the model's tokenizer (online objectives decode their samples); default ignore."""

    def prepare_model(self, model: nn.Module) -> None:
        """Add what the objective itself trains (a reward head) to the adapted model; default none."""

    def save_artifacts(self, model: nn.Module, tokenizer, out_dir: Path) -> dict[str, str]:
        """Write objective-specific artifacts under `out_dir`; returns metrics entries naming them."""
        return {}


def shifted_token_logprobs(
    logits: Tensor, labels: Tensor, chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """Log-prob of each next token and the mask of supervised positions.

    `logits[:, t]` predicts `labels[:, t + 1]`; positions labelled IGNORE_INDEX get log-prob 0.
    Returns two (batch, seq - 1) tensors. `chunk_size` positions at a time (under activation
    checkpointing when gradients flow) keeps the float32 copy of the full-vocabulary logits and
    its softmax from being held for backward: a memory saving for large vocabularies, same values.
    """
    # Prompt tuning / P-Tuning prepend virtual tokens and return their logits too: keep the last
    # seq positions, the ones that belong to the real tokens (a no-op for every other model).
    logits = logits[:, -labels.shape[1] : -1]
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    safe_targets = targets.masked_fill(~mask, 0)
    return chunked_target_logprobs(logits, safe_targets, chunk_size) * mask, mask


def chunked_target_logprobs(logits: Tensor, targets: Tensor, chunk_size: int | None = None) -> Tensor:
    """`log softmax(logits)[targets]` along dim 1 in chunks of `chunk_size` (None: all at once)."""
    if chunk_size is None or chunk_size >= logits.shape[1]:
        return _target_logprobs(logits, targets)
    chunks = []
    for start in range(0, logits.shape[1], chunk_size):
        part = (logits[:, start : start + chunk_size], targets[:, start : start + chunk_size])
        if torch.is_grad_enabled() and logits.requires_grad:
            chunks.append(checkpoint(_target_logprobs, *part, use_reentrant=False))
        else:
            chunks.append(_target_logprobs(*part))
    return torch.cat(chunks, dim=1)


def supervised_token_logprobs(
    model: nn.Module, batch: dict[str, Tensor], chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """`shifted_token_logprobs(forward_logits(model, batch), labels)`, LM head at supervised positions only.

    The output layer (hidden -> vocabulary) is a per-position map, so running it only on the
    hidden states whose next token is labelled gives the same log-probs and gradients at a
    fraction of its cost: completion-only SFT supervises ~20% of the positions, and on a 49k
    vocabulary with a 576-wide model the head is ~40% of the forward FLOPs. A forward pre-hook on
    the output embedding swaps its input for the selected rows, so the model's own forward (and
    whatever it does after the head: soft-capping, scaling) still runs. Models without an output
    embedding and prompt-learning adapters (their virtual tokens shift the positions) take the
    full-logits path.
    """
    labels = batch["labels"]
    head = _output_head(model)
    if head is None:
        return shifted_token_logprobs(forward_logits(model, batch), labels, chunk_size)
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    at_hidden = torch.nn.functional.pad(mask, (0, 1))  # hidden state t predicts label t + 1

    def select(module: nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        if hidden.shape[:2] != at_hidden.shape:
            raise RuntimeError(
                f"LM head input {tuple(hidden.shape)} does not match labels {tuple(labels.shape)}"
            )
        return (hidden[at_hidden].unsqueeze(0), *args[1:])

    handle = head.register_forward_pre_hook(select)
    try:
        logits = forward_logits(model, batch)  # (1, supervised tokens, vocab)
    finally:
        handle.remove()
    flat = chunked_target_logprobs(logits, targets[mask].unsqueeze(0), chunk_size).squeeze(0)
    logprobs = torch.zeros(mask.shape, dtype=flat.dtype, device=flat.device).masked_scatter(mask, flat)
    return logprobs, mask


def _output_head(model: nn.Module) -> nn.Module | None:
    """The module that maps hidden states to logits, or None where selecting rows would be wrong."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and peft_config.is_prompt_learning:
        return None
    get_head = getattr(model, "get_output_embeddings", None)
    return get_head() if callable(get_head) else None


def _target_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits)[target] in float32 (the same float operations as every earlier run)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def forward_logits(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The model's logits for a batch, padded or packed.

    A packed batch (with `position_ids`, see tunelab.data.packing) runs without its 2-D mask:
    transformers then derives a block-diagonal causal mask from the position ids, so no token
    attends across an example boundary.
    """
    if "position_ids" not in batch:
        # No KV cache while training: the model would otherwise build and fill one every step.
        ids, mask = batch["input_ids"], batch["attention_mask"]
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and peft_config.is_prompt_learning:
        # Virtual tokens (prompt/prefix tuning) would be shared by every example of a packed row.
        raise ConfigError(
            f"data.packing=true does not work with prompt-learning adapters ({peft_config.peft_type}): "
            "set data.packing=false"
        )
    # No KV cache: with one, transformers skips packed-sequence detection and lets rows attend across.
    ids, positions = batch["input_ids"], batch["position_ids"]
    return model(input_ids=ids, position_ids=positions, use_cache=False).logits

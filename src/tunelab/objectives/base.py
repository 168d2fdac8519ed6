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
    if chunk_size is None or chunk_size >= logits.shape[1]:
        logprobs = _target_logprobs(logits, safe_targets)
    else:
        chunks = []
        for start in range(0, logits.shape[1], chunk_size):
            part = (logits[:, start : start + chunk_size], safe_targets[:, start : start + chunk_size])
            if torch.is_grad_enabled() and logits.requires_grad:
                chunks.append(checkpoint(_target_logprobs, *part, use_reentrant=False))
            else:
                chunks.append(_target_logprobs(*part))
        logprobs = torch.cat(chunks, dim=1)
    return logprobs * mask, mask


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
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
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

"""Throughput arithmetic for the benchmarks: tokens counted, training FLOPs, utilisation, ratios.

Conventions (docs/performance.md says why):

- Throughput counts non-padding tokens; the loss counts supervised tokens (next token labelled).
- A matmul of an (m, k) by a (k, n) matrix is 2·m·k·n FLOPs.
- Training FLOPs of a dense layer with N weights, per token: forward 2N, input gradient 2N, weight
  gradient 2N. Full fine-tuning: 6N. A frozen weight (LoRA's base) has no weight gradient: 4N.
  LoRA's own matrices train: 6 per adapter weight.
- The LM head (d x vocab) is counted at the positions the loss needs (the supervised tokens),
  whichever positions an implementation computes it at: an arm that computes more does not get
  credit for it.
- Causal attention, per layer and sequence of n tokens with attention width A (heads x head dim):
  the QK^T and AV products are 2·n²·A FLOPs each over the lower triangle, 2·n²·A forward in
  all; backward twice that: 6·n²·A a layer for training, frozen weights or not.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count needs from a model: matmul weights of the body and head, attention size."""

    body_weights: int  # weights of every matmul except the LM head (embedding lookups excluded)
    head_weights: int  # hidden x vocabulary
    layers: int
    attention_width: int  # heads x head dim of the queries


def model_shape(model: nn.Module) -> ModelShape:
    """A Hugging Face causal LM's matmul weights (adapter layers excluded) and attention size."""
    head = model.get_output_embeddings()
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    body = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module is not head and not _is_adapter(name):
            body += module.in_features * module.out_features
    return ModelShape(
        body_weights=body,
        head_weights=head.weight.shape[0] * head.weight.shape[1],
        layers=config.num_hidden_layers,
        attention_width=config.num_attention_heads * head_dim,
    )


def _is_adapter(name: str) -> bool:
    """peft's own layers (lora_A/lora_B) are adapter weights; the wrapped `base_layer` is the body."""
    return any(part.startswith("lora_") for part in name.split("."))


def attention_flops(shape: ModelShape, lengths: Iterable[int]) -> int:
    """Training FLOPs of causal attention over sequences of these lengths (6·n²·A per layer)."""
    return sum(6 * n * n * shape.attention_width * shape.layers for n in lengths)


def training_flops(
    shape: ModelShape,
    tokens: int,
    supervised_tokens: int,
    lengths: Iterable[int],
    full: bool,
    adapter_weights: int = 0,
) -> int:
    """Model FLOPs a training step needs: body, LM head at supervised tokens, attention, adapter.

    `full`: every weight trains (6 per weight and token); otherwise the base is frozen (4) and
    `adapter_weights` train (6 each, at every token).
    """
    per_weight = 6 if full else 4
    return (
        per_weight * shape.body_weights * tokens
        + per_weight * shape.head_weights * supervised_tokens
        + 6 * adapter_weights * tokens
        + attention_flops(shape, lengths)
    )


def gemm_flops(m: int, k: int, n: int) -> int:
    """FLOPs of one (m, k) @ (k, n) matmul."""
    return 2 * m * k * n


def count_tokens(rows: Sequence[dict]) -> tuple[int, int]:
    """(non-padding tokens, supervised tokens) of tokenized rows with `input_ids` and `labels`.

    A label is supervised when it is not IGNORE_INDEX and is not the row's first token (nothing
    predicts it).
    """
    from tunelab.core.constants import IGNORE_INDEX

    tokens = sum(len(r["input_ids"]) for r in rows)
    supervised = sum(sum(1 for y in r["labels"][1:] if y != IGNORE_INDEX) for r in rows)
    return tokens, supervised


@dataclass(frozen=True)
class RatioSummary:
    """Per-repeat A/B ratios and their median, minimum and maximum."""

    ratios: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.ratios), max(self.ratios)


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> RatioSummary:
    """A/B per repeat (runs paired by their position: A and B of one repeat ran back to back)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need equally many runs on both sides, got {len(a)} and {len(b)}")
    return RatioSummary([x / y for x, y in zip(a, b, strict=True)])


def batch_stats(batch: dict) -> tuple[int, int, list[int]]:
    """(non-padding tokens, supervised tokens, sequence lengths) of a collated SFT batch.

    Padded rows are one sequence each (their `attention_mask` sum); a packed row (with
    `position_ids`) holds one sequence per position-id restart within its real tokens.
    """
    from tunelab.core.constants import IGNORE_INDEX

    mask = batch["attention_mask"].bool()
    supervised = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    if "position_ids" not in batch:
        return int(mask.sum()), supervised, [int(n) for n in mask.sum(-1) if n > 0]
    lengths = []
    for positions, real in zip(batch["position_ids"], mask, strict=True):
        starts = [*(positions[real] == 0).nonzero().flatten().tolist(), int(real.sum())]
        lengths += [b - a for a, b in itertools.pairwise(starts) if b > a]
    return int(mask.sum()), supervised, lengths


def profile_breakdown(durations: dict[str, float]) -> dict[str, float]:
    """Lightning SimpleProfiler totals (seconds per action) grouped into the phases of a step.

    Lightning's `optimizer_step` wraps the closure (training_step, backward, the guards' hooks,
    gradient clipping): what is left of it is the optimizer's own update. `forward` includes the
    loss and the module's `self.log` calls; `loop` is the epoch loop's time outside the batch and
    the data fetch (batch-end hooks, logger bookkeeping).
    """

    def total(prefix: str) -> float:
        return sum(v for k, v in durations.items() if k.startswith(prefix))

    forward = _first(durations, "Strategy.training_step")
    backward = _first(durations, "Strategy.backward")
    clipping = _first(durations, "configure_gradient_clipping")
    guards = total("[Callback]TrainingGuards.")
    inside = {"on_before_zero_grad", "on_before_backward", "on_after_backward", "on_before_optimizer_step"}
    guards_inside = sum(
        v
        for k, v in durations.items()
        if k.startswith("[Callback]TrainingGuards.") and k.rsplit(".", 1)[1] in inside
    )
    optimizer = _first(durations, "Module.optimizer_step") - forward - backward - clipping - guards_inside
    data = durations.get("[_TrainingEpochLoop].train_dataloader_next", 0.0)
    loop = durations.get("run_training_epoch", 0.0) - durations.get("run_training_batch", 0.0) - data
    return {
        "forward+loss+log": forward,
        "backward": backward,
        "optimizer": optimizer,
        "gradient clipping": clipping,
        "guards": guards,
        "data": data,
        "loop bookkeeping": loop,
        "checkpoint write": durations.get("save_checkpoint", 0.0),
        "total step loop": durations.get("run_training_epoch", 0.0),
    }


def _first(durations: dict[str, float], suffix: str) -> float:
    """The one action whose name ends with `suffix` (0 when none)."""
    return next((v for k, v in durations.items() if k.endswith(suffix)), 0.0)

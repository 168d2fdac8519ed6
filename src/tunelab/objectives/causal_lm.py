"""Next-token cross-entropy: continued pretraining (cpt) and supervised fine-tuning (sft).

The two differ only in which tokens the data module supervises (every token for cpt, the
assistant turns for completion-only sft), so one objective serves both.
"""

from __future__ import annotations

from torch import Tensor, nn

from tunelab.objectives.base import Objective, ObjectiveOutput, forward_logits, shifted_token_logprobs


class CausalLMObjective(Objective):
    """Mean negative log-likelihood over the supervised tokens of the batch."""

    def __init__(self, name: str, batch_kind: str = "sft", chunk_size: int | None = None) -> None:
        super().__init__(name)
        self.batch_kind = batch_kind
        self.chunk_size = chunk_size  # sequence positions per log-softmax chunk; None: all at once

    def __call__(self, model: nn.Module, batch: dict[str, Tensor], reference=None) -> ObjectiveOutput:
        logits = forward_logits(model, batch)
        logprobs, mask = shifted_token_logprobs(logits, batch["labels"], self.chunk_size)
        supervised = mask.sum()
        loss = -logprobs.sum() / supervised.clamp(min=1)
        return ObjectiveOutput(loss=loss, supervised_tokens=supervised)

"""Next-token cross-entropy: continued pretraining (cpt) and supervised fine-tuning (sft).

The two differ only in which tokens the data module supervises (every token for cpt, the
assistant turns for completion-only sft), so one objective serves both.
"""

from __future__ import annotations

from torch import Tensor, nn

from tunelab.objectives.base import (
    Objective,
    ObjectiveOutput,
    forward_logits,
    shifted_token_logprobs,
    supervised_token_logprobs,
)


class CausalLMObjective(Objective):
    """Mean negative log-likelihood over the supervised tokens of the batch."""

    def __init__(
        self, name: str, batch_kind: str = "sft", chunk_size: int | None = None, supervised_head: bool = True
    ) -> None:
        super().__init__(name)
        self.batch_kind = batch_kind
        self.chunk_size = chunk_size  # sequence positions per log-softmax chunk; None: all at once
        self.supervised_head = supervised_head  # LM head only where a label is (same loss, less work)

    def __call__(self, model: nn.Module, batch: dict[str, Tensor], reference=None) -> ObjectiveOutput:
        if self.supervised_head:
            logprobs, mask = supervised_token_logprobs(model, batch, self.chunk_size)
        else:
            logprobs, mask = shifted_token_logprobs(
                forward_logits(model, batch), batch["labels"], self.chunk_size
            )
        supervised = mask.sum()
        loss = -logprobs.sum() / supervised.clamp(min=1)
        return ObjectiveOutput(loss=loss, supervised_tokens=supervised)

"""SPIN: Chen et al., 2024, "Self-Play Fine-Tuning Converts Weak Language Models to Strong
Language Models", arXiv:2401.01335.

Iteration t trains against the model of iteration t-1, which is this run's starting model and so
its reference (the base with the adapter disabled, or a frozen copy). For each SFT prompt the
t-1 model's own answer is the rejected response and the ground truth the chosen one; the loss is
the paper's logistic loss (eq. 4.7), which is DPO's with the generated answer as the loser:
L = -log σ(λ [log πθ(y|x)/π_{t-1}(y|x) - log πθ(y'|x)/π_{t-1}(y'|x)]).
Answers are generated once per prompt (the iteration's synthetic data set) and reused on later
epochs. `tunelab pipeline pipeline=spin` runs the iterations, each in its own run directory.
`nll_weight` > 0 adds α · NLL of the real answer (token mean), as RPO adds to DPO (Pang et al.,
2024, arXiv:2404.19733): it keeps the ground truth's likelihood from falling with the rejected one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.collate import pad_batch
from tunelab.data.preference import join
from tunelab.models.stop_tokens import stop_token_ids
from tunelab.objectives.base import ObjectiveOutput
from tunelab.objectives.dpo import DPOObjective
from tunelab.objectives.generation import GenerationSettings, sample
from tunelab.objectives.online import StepClock
from tunelab.objectives.preference import PairLogps, PairLoss


def pair_rows(
    prompts: list[list[int]], real: list[list[int]], generated: list[list[int]], pad_id: int
) -> dict:
    """A preference batch: prompt + real answer for every prompt, then prompt + generated answer."""
    rows = [join(p, y, 10**9) for p, y in zip(prompts, real, strict=True)]
    rows += [join(p, y, 10**9) for p, y in zip(prompts, generated, strict=True)]
    return pad_batch(rows, pad_id)


class SPINObjective(DPOObjective):
    """The DPO-form SPIN loss on (ground truth, t-1 model's answer) pairs built from prompt batches."""

    batch_kind: ClassVar[str] = "prompt"

    def __init__(
        self, name: str = "spin", beta: float = 0.1, generation: dict | None = None, nll_weight: float = 0.0
    ) -> None:
        super().__init__(name, beta=beta)
        self.nll_weight = nll_weight
        self.generation = GenerationSettings(**(generation or {}))
        self.tokenizer = None
        self.clock = StepClock()
        self.generated: dict[tuple[int, ...], list[int]] = {}  # prompt ids -> t-1 model's answer

    def attach_tokenizer(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def pair_loss(self, policy: PairLogps, reference: PairLogps | None) -> PairLoss:
        """SPIN's logistic loss, plus `nll_weight` · the real answers' token-mean NLL when set."""
        out = super().pair_loss(policy, reference)
        if not self.nll_weight:
            return out
        nll = policy.chosen_nll()
        metrics = {**out.metrics, "nll_loss": nll}
        return PairLoss(out.losses + self.nll_weight * nll, out.chosen_rewards, out.rejected_rewards, metrics)

    def opponent_answers(self, reference: Any, batch: dict[str, Tensor], prompts: list[list[int]]) -> list:
        """The t-1 model's answers to the batch's prompts, generated for prompts not seen before."""
        new = [i for i, p in enumerate(prompts) if tuple(p) not in self.generated]
        if new:
            rollout = sample(
                reference.target,
                batch["input_ids"][new],
                batch["attention_mask"][new],
                self.generation,
                pad_id=self.tokenizer.pad_token_id,
                eos_id=stop_token_ids(reference.target, self.tokenizer),
                disable_adapter=reference.disable_adapter,
            )
            self.clock.add_generation(rollout.seconds)
            for i, answer in zip(new, rollout.completion_ids(), strict=True):
                self.generated[tuple(prompts[i])] = answer
        return [self.generated[tuple(p)] for p in prompts]

    def __call__(self, model: nn.Module, batch: dict[str, Any], reference: Any = None) -> ObjectiveOutput:
        if reference is None:
            raise ValueError("objective 'spin' needs the previous iteration's model as its reference")
        self.clock.start()
        prompts = [
            ids[m.bool()].tolist() for ids, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)
        ]
        real = [t[t != IGNORE_INDEX].tolist() for t in batch["target_ids"]]
        generated = self.opponent_answers(reference, batch, prompts)
        pairs = pair_rows(prompts, real, generated, self.tokenizer.pad_token_id)
        out = super().__call__(
            model, {k: v.to(batch["input_ids"].device) for k, v in pairs.items()}, reference
        )
        same = torch.tensor([g == r for g, r in zip(generated, real, strict=True)], dtype=torch.float32)
        out.metrics |= {
            "generated_matches_real": same.mean(),  # pairs with nothing to learn (margin 0)
            "completion_length": torch.tensor([len(g) for g in generated], dtype=torch.float32).mean(),
            "generation_share": torch.tensor(self.clock.share()),
        }
        return out

    def save_artifacts(self, model: nn.Module, tokenizer, out_dir) -> dict[str, float]:
        return {**self.clock.summary(), "spin/generated_prompts": len(self.generated)}

"""Pairwise machinery shared by the offline alignment objectives (DPO, IPO, SimPO, ORPO, CPO).

A preference batch holds 2B rows in one tensor: rows [:B] are prompt+chosen, rows [B:] the same
prompts + rejected, labelled on the completion only. One forward over all 2B rows gives every
sequence log-prob; each objective file then only writes its formula in `pair_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from tunelab.objectives.base import (
    Objective,
    ObjectiveOutput,
    shifted_token_logprobs,
    supervised_token_logprobs,
)


class Reference(Protocol):
    """A frozen model that gives summed completion log-probs (see tunelab.objectives.reference)."""

    def sequence_logps(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]: ...


@dataclass
class PairLogps:
    """Summed completion log-probs and completion lengths of B chosen and B rejected sequences."""

    chosen: Tensor
    rejected: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor

    @classmethod
    def split(cls, logps: Tensor, tokens: Tensor) -> PairLogps:
        """Split 2B per-row values into the chosen (first half) and rejected (second half) rows."""
        b = logps.shape[0] // 2
        return cls(logps[:b], logps[b:], tokens[:b], tokens[b:])

    def per_token(self) -> PairLogps:
        """Length-normalised log-probs: the mean log-prob per completion token."""
        c, r = self.chosen_tokens.clamp(min=1), self.rejected_tokens.clamp(min=1)
        return PairLogps(self.chosen / c, self.rejected / r, self.chosen_tokens, self.rejected_tokens)

    def chosen_nll(self) -> Tensor:
        """Token-mean negative log-likelihood of the chosen completions (the SFT term)."""
        return -self.chosen.sum() / self.chosen_tokens.sum().clamp(min=1)


@dataclass
class PairLoss:
    """Per-pair losses and implicit rewards, plus any extra metrics of the objective."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


def sequence_logps(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Summed log-prob of the labelled tokens of each row, and how many tokens were labelled."""
    logprobs, mask = shifted_token_logprobs(logits, labels)
    return logprobs.sum(-1), mask.sum(-1)


def model_sequence_logps(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """`sequence_logps` of every row of a batch in one forward, the LM head on completion tokens only."""
    logprobs, mask = supervised_token_logprobs(model, batch)
    return logprobs.sum(-1), mask.sum(-1)


def reward_metrics(chosen: Tensor, rejected: Tensor) -> dict[str, Tensor]:
    """TRL-named reward metrics, detached batch means."""
    chosen, rejected = chosen.detach().float(), rejected.detach().float()
    return {
        "rewards/chosen": chosen.mean(),
        "rewards/rejected": rejected.mean(),
        "rewards/margins": (chosen - rejected).mean(),
        "rewards/accuracies": (chosen > rejected).float().mean(),
    }


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` where `mask` holds (0 when it never does), detached."""
    return (values * mask).sum().detach() / mask.sum().clamp(min=1)


def logps_metrics(logps: PairLogps) -> dict[str, Tensor]:
    """Summed policy log-probs of the completions; `logps/accuracies` needs no reward model."""
    chosen, rejected = logps.chosen.detach(), logps.rejected.detach()
    return {
        "logps/chosen": chosen.mean(),
        "logps/rejected": rejected.mean(),
        "logps/accuracies": (chosen > rejected).float().mean(),
    }


class PreferenceObjective(Objective):
    """Loss on (chosen, rejected) pairs from sequence log-probs; subclasses write `pair_loss`.

    `needs_reference` says whether a frozen reference's log-probs are computed and passed in;
    `length_normalize` whether log-probs are per-token means (SimPO, ORPO) or sums (DPO).
    """

    batch_kind: ClassVar[str] = "preference"
    needs_reference: ClassVar[bool] = True
    length_normalize: bool = False

    def pair_loss(self, policy: PairLogps, reference: PairLogps | None) -> PairLoss:
        """The objective's formula: per-pair losses and implicit rewards."""
        raise NotImplementedError

    def __call__(
        self, model: nn.Module, batch: dict[str, Tensor], reference: Reference | None = None
    ) -> ObjectiveOutput:
        summed = PairLogps.split(*model_sequence_logps(model, batch))
        ref = None
        if self.needs_reference:
            if reference is None:
                raise ValueError(f"objective {self.name!r} needs a reference model; none was given")
            ref = PairLogps.split(*reference.sequence_logps(batch))
        policy = summed.per_token() if self.length_normalize else summed
        if ref is not None and self.length_normalize:
            ref = ref.per_token()
        out = self.pair_loss(policy, ref)
        metrics = reward_metrics(out.chosen_rewards, out.rejected_rewards)
        metrics |= logps_metrics(summed) | {k: v.detach() for k, v in out.metrics.items()}
        supervised = summed.chosen_tokens.sum() + summed.rejected_tokens.sum()
        return ObjectiveOutput(loss=out.losses.mean(), supervised_tokens=supervised, metrics=metrics)


def bradley_terry(margin: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """-log σ(margin), optionally with conservative label smoothing ε (cDPO)."""
    smooth = torch.nn.functional.logsigmoid
    return -(1 - label_smoothing) * smooth(margin) - label_smoothing * smooth(-margin)

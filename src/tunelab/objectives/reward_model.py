"""Reward model: a scalar head on the LM trained with the Bradley–Terry loss on preference pairs.

Bradley and Terry, 1952; as a reward model for RLHF: Ouyang et al., 2022, "Training language
models to follow instructions with human feedback", arXiv:2203.02155 (eq. 1):
L = -log σ(r(x, yw) - r(x, yl)), r = a linear head on the last token's final hidden state.
The trained model is exported as an HF `AutoModelForSequenceClassification` (num_labels=1), the
form PPO and TRL load as a reward model.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from peft import PeftModel
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from tunelab.objectives.base import Objective, ObjectiveOutput
from tunelab.objectives.preference import Reference, bradley_terry, reward_metrics

HEAD = "reward_head"  # the attribute the scalar head lives under on the trained model


def last_token_rewards(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The head's scalar at each row's last attended (right-padded) token."""
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
    )
    hidden = out.hidden_states[-1]  # after the final norm: what the LM head (and `score`) reads
    last = batch["attention_mask"].sum(-1) - 1
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    head = getattr(model, HEAD)
    return head(hidden[rows, last].to(head.weight.dtype)).squeeze(-1).float()


class RewardModelObjective(Objective):
    """Bradley–Terry pairwise loss on scalar rewards; no reference model."""

    batch_kind = "preference"
    needs_reference = False

    def prepare_model(self, model: nn.Module) -> None:
        """Attach the trainable scalar head (no bias, like HF's `score`) if it is not there yet."""
        if hasattr(model, HEAD):
            return
        config = model.config
        weight = next(model.parameters())
        head = nn.Linear(config.hidden_size, 1, bias=False, device=weight.device, dtype=weight.dtype)
        nn.init.normal_(head.weight, std=getattr(config, "initializer_range", 0.02))
        setattr(model, HEAD, head)

    def __call__(
        self, model: nn.Module, batch: dict[str, Tensor], reference: Reference | None = None
    ) -> ObjectiveOutput:
        rewards = last_token_rewards(model, batch)
        b = rewards.shape[0] // 2
        losses = bradley_terry(rewards[:b] - rewards[b:])
        supervised = (batch["labels"][:, 1:] != -100).sum()
        return ObjectiveOutput(losses.mean(), supervised, reward_metrics(rewards[:b], rewards[b:]))

    def save_artifacts(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> dict:
        """Export `reward_model/`: the LM (adapter merged) with the head as HF's `score` layer."""
        target = out_dir / "reward_model"
        export_reward_model(model, tokenizer, target)
        return {"reward_model": str(target.relative_to(out_dir))}


def export_reward_model(model: nn.Module, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    """Save an `AutoModelForSequenceClassification` that scores exactly like `last_token_rewards`."""
    export_sequence_classifier(model, tokenizer, target, HEAD)


def export_sequence_classifier(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, target: Path, head_attribute: str
) -> None:
    """Save the LM (adapter merged) with its linear head `head_attribute` as HF's `score` layer:
    an `AutoModelForSequenceClassification` that pools the last non-pad token as we do."""
    lm = copy.deepcopy(model)  # merging must not change the caller's model
    head = getattr(lm, head_attribute)
    if isinstance(lm, PeftModel):
        lm = lm.merge_and_unload()
    config = copy.deepcopy(lm.config)
    config.num_labels, config.architectures = head.out_features, None
    config.pad_token_id = tokenizer.pad_token_id  # HF pools the last non-pad token
    scorer = AutoModelForSequenceClassification.from_config(config, dtype=head.weight.dtype)
    missing, _ = scorer.load_state_dict(lm.state_dict(), strict=False)
    if set(missing) != {"score.weight"}:
        raise RuntimeError(f"{target.name} export: base weights did not map (missing {missing})")
    with torch.no_grad():
        scorer.score.weight.copy_(head.weight)
    scorer.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)

"""Reward functions for the online objectives (GRPO, PPO), registered by name.

A reward function maps a batch of (prompt, completion, ground-truth answer) strings to one float
per completion. Configs pick them by registered name or as `module:function` (a user's own):

    rewards:
      - {name: exact_match, weight: 1.0}
      - {name: format, weight: 0.2, pattern: '\\d+\\+\\d+=\\d+'}   # extra keys: kwargs
      - {name: my_pkg.scores:brevity}
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunelab.core.config import ConfigError
from tunelab.data.answers import AnswerMatcher

RewardFn = Callable[..., list[float]]
REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: make a reward function available to configs as `name`."""

    def add(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return add


def first_line(completion: str) -> str:
    """The reply as the exact-match eval reads it: its first line, stripped."""
    return completion.split("\n")[0].strip()


@register_reward("exact_match")
def exact_match(prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]) -> list[float]:
    """1.0 where the completion is exactly the ground truth (as the exact-match eval scores it)."""
    return [float(first_line(c) == a.strip()) for c, a in zip(completions, answers, strict=True)]


@register_reward("final_answer")
def final_answer(prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]) -> list[float]:
    """1.0 where the text after the last '=' matches the answer's: correct result, any working."""
    return [
        float(first_line(c).rsplit("=", 1)[-1].strip() == a.strip().rsplit("=", 1)[-1])
        for c, a in zip(completions, answers, strict=True)
    ]


def _result(text: str) -> str:
    """The part of a reply after its last '=' (the whole reply when it has none)."""
    return first_line(text).rsplit("=", 1)[-1].strip()


@register_reward("digit_match")
def digit_match(prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]) -> list[float]:
    """Partial credit: the share of the result's characters right in place, over the longer length.

    A near miss ("46" for "47") earns 0.5, so a group of samples rarely ties at 0: a denser signal
    than exact match for a model that is right only now and then.
    """
    scores = []
    for c, a in zip(completions, answers, strict=True):
        got, want = _result(c), _result(a)
        same = sum(x == y for x, y in zip(got, want, strict=False))
        scores.append(same / max(len(got), len(want), 1))
    return scores


@register_reward("char_match")
def char_match(prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]) -> list[float]:
    """Partial credit over the whole reply: characters equal to the ground truth's, in place.

    The tiny SFT model's arithmetic errors are mostly a miscopied operand ("13+55=68" for
    "13+54=67"); this credits every character it got right.
    """
    scores = []
    for c, a in zip(completions, answers, strict=True):
        got, want = first_line(c), a.strip()
        scores.append(sum(x == y for x, y in zip(got, want, strict=False)) / max(len(got), len(want), 1))
    return scores


@register_reward("answer")
def answer_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    answers: Sequence[str],
    match: str = "exact",
    pattern: str | None = None,
    normalize: bool = True,
) -> list[float]:
    """1.0 where the reply matches the prompt record's reference answer, compared as the default
    evaluation compares (`match`: exact | number | regex | contains; tunelab.data.answers): the
    reward for a chat model, whose replies are sentences ("13 + 54 = 67.") rather than the toy form."""
    matcher = _matcher(match, pattern, normalize)
    return [float(matcher(c, a)) for c, a in zip(completions, answers, strict=True)]


@functools.cache
def _matcher(match: str, pattern: str | None, normalize: bool) -> AnswerMatcher:
    return AnswerMatcher(match, pattern, normalize)


@register_reward("format")
def format_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    answers: Sequence[str],
    pattern: str = r"\d+\+\d+=\d+",
) -> list[float]:
    """1.0 where the whole reply matches `pattern` (default: the worked sum form "12+34=46")."""
    regex = re.compile(pattern)
    return [float(regex.fullmatch(first_line(c)) is not None) for c in completions]


def resolve_reward(name: str) -> RewardFn:
    """A registered reward by name, or a user function given as `module:function`."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(
                f"reward {name!r}: cannot import {attr!r} from {module_name!r} ({err})"
            ) from err
        if not callable(fn):
            raise ConfigError(f"reward {name!r}: {module_name}.{attr} is not callable")
        return fn
    if name not in REWARDS:
        raise ConfigError(
            f"reward {name!r} is not registered; expected one of {sorted(REWARDS)} or 'module:function'"
        )
    return REWARDS[name]


@dataclass
class WeightedReward:
    """One configured reward: the function, its weight and its extra keyword arguments."""

    name: str
    fn: RewardFn
    weight: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)


class RewardSet:
    """The weighted sum of the configured reward functions, with each one's batch mean as a metric."""

    def __init__(self, specs: Sequence[dict[str, Any] | str]) -> None:
        if not specs:
            raise ConfigError("objective.rewards: expected at least one reward function")
        self.rewards = [self._build(spec, i) for i, spec in enumerate(specs)]

    @staticmethod
    def _build(spec: dict[str, Any] | str, index: int) -> WeightedReward:
        if isinstance(spec, str):
            spec = {"name": spec}
        spec = dict(spec)
        if "name" not in spec:
            raise ConfigError(f"objective.rewards[{index}]: expected a 'name' key, got {sorted(spec)}")
        name = spec.pop("name")
        weight = float(spec.pop("weight", 1.0))
        return WeightedReward(name, resolve_reward(name), weight, spec)

    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted total per completion, `reward/<name>` batch means)."""
        total = torch.zeros(len(completions))
        metrics = {}
        for r in self.rewards:
            values = torch.tensor(r.fn(prompts, completions, answers, **r.kwargs), dtype=torch.float32)
            if values.shape != total.shape:
                raise ValueError(f"reward {r.name!r} returned {values.numel()} values for {len(completions)}")
            total += r.weight * values
            metrics[f"reward/{r.name}"] = values.mean()
        return total, metrics


@functools.cache
def load_reward_model(path: str) -> tuple[Any, Any]:
    """An exported reward model (objective=reward's `reward_model/`) and its tokenizer, loaded once."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"reward_model path={path!r}: expected the reward_model/ directory of a reward run")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path)


@register_reward("reward_model")
@torch.no_grad()
def reward_model(
    prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str], path: str = ""
) -> list[float]:
    """The scalar score of a trained reward model on the chat (prompt, completion)."""
    model, tokenizer = load_reward_model(path)
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": c}], tokenize=False
        )
        for p, c in zip(prompts, completions, strict=True)
    ]
    tokenizer.padding_side = "right"  # HF's scorer reads the last non-pad token
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    device = next(model.parameters()).device
    return model(**enc.to(device)).logits[:, 0].float().cpu().tolist()

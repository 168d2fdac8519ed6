"""Run the configured eval tasks and flatten their scores into metrics keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.core.config import ConfigError, instantiate_clearly
from tunelab.data.sources import DataError


class EvalTask(Protocol):
    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict: ...


def build_eval_tasks(specs: Mapping[str, Any]) -> dict[str, EvalTask]:
    """`cfg.eval.tasks` instantiated, before the model loads; a bad held-out record or setting
    arrives as its own DataError/ConfigError line, not wrapped by Hydra."""
    return {name: build_eval_task(name, spec) for name, spec in specs.items()}


def build_eval_task(name: str, spec: Any) -> EvalTask:
    """One task of `cfg.eval.tasks`; a ConfigError names its key (`eval.tasks.<name>`)."""
    try:
        return instantiate_clearly(spec, (DataError, ConfigError))
    except ConfigError as err:
        raise ConfigError(f"eval.tasks.{name}: {err}") from None


def evaluate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    eval_tasks: dict[str, EvalTask],
    batch_size: int,
    prefix: str,
    samples_path: Path | None = None,
) -> dict[str, float]:
    """`{f"{prefix}/{task}/{metric}": value}` for every task; samples appended as JSON lines.

    An entry that scores several tasks (lm-eval) returns them as `{"tasks": {task: {metric: v}}}`;
    they are keyed by their own task names.
    """
    scores: dict[str, float] = {}
    for name, task in eval_tasks.items():
        result = task.run(model, tokenizer, batch_size)
        for metric, value in result.items():
            if isinstance(value, (int, float)):
                scores[f"{prefix}/{name}/{metric}"] = value
        for sub_task, metrics in result.get("tasks", {}).items():
            scores |= {f"{prefix}/{sub_task}/{metric}": value for metric, value in metrics.items()}
        if samples_path is not None:
            with samples_path.open("a") as fh:
                for sample in result.get("samples", []):
                    fh.write(json.dumps({"phase": prefix, "task": name, **sample}) + "\n")
    return scores


SPEED_METRICS = frozenset({"seconds", "tokens_per_sec"})  # how fast an eval ran, not a score: no delta


def deltas(metrics: dict, before: str = "baseline", after: str = "eval") -> dict[str, float]:
    """`delta/<task>/<metric>` = after - before for every score both phases have.

    Scores are floats; integer entries are counts (items, tokens) and get no delta.
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not key.startswith(f"{after}/"):
            continue
        base = metrics.get(f"{before}/{key[len(after) + 1 :]}")
        if key.rsplit("/", 1)[-1] in SPEED_METRICS:
            continue
        if isinstance(value, float) and isinstance(base, float):
            out[f"delta/{key[len(after) + 1 :]}"] = value - base
    return out

"""EleutherAI lm-eval on the in-memory model (adapters included), as one entry of the eval registry.

The shipped tiny-world tasks (`lm_eval_tasks/*.yaml`) build their data offline from the tiny world
and hold bare questions: lm-eval renders them with the tokenizer's chat template
(`apply_chat_template`, few-shot examples as earlier turns), so any chat model gets its own markup.
Standard task names (arc_easy, hellaswag, mmlu, gsm8k, ...) pass through to lm-eval's own task
index for users with hub access.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.core.config import ConfigError
from tunelab.models.modes import in_eval_mode

SHIPPED_TASKS = Path(__file__).parent / "lm_eval_tasks"


@cache
def task_manager(include_path: tuple[str, ...], include_defaults: bool):
    """lm-eval's task index; cached because indexing lm-eval's own thousands of YAMLs takes seconds."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_path), include_defaults=include_defaults)


def resolve_tasks(names: list[str], include_path: list[str]):
    """A TaskManager that knows every name: shipped/included YAMLs only if that suffices."""
    paths = tuple(str(p) for p in [SHIPPED_TASKS, *include_path])
    for path in paths[1:]:
        if not Path(path).is_dir():
            raise ConfigError(f"eval lm-eval include_path {path!r} is not a directory of task YAMLs")
    local = task_manager(paths, include_defaults=False)
    manager = local if all(n in local.all_tasks for n in names) else task_manager(paths, True)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise ConfigError(
            f"eval lm-eval tasks {unknown} are unknown to lm-eval; shipped offline tasks: "
            f"{sorted(local.all_tasks)}, or any lm-eval task name (e.g. arc_easy, needs the hub)"
        )
    return manager


@contextmanager
def hub_offline() -> Iterator[None]:
    """Refuse every Hugging Face hub request inside the block, then restore the previous mode.

    huggingface_hub and datasets read HF_HUB_OFFLINE / HF_DATASETS_OFFLINE once, at import, so
    their module constants are switched too; restoring them keeps a later job of a sweep free to
    load a hub model.
    """
    import datasets.config
    import huggingface_hub.constants

    switches = [
        (huggingface_hub.constants, "HF_HUB_OFFLINE"),
        (datasets.config, "HF_HUB_OFFLINE"),
        (datasets.config, "HF_DATASETS_OFFLINE"),
    ]
    saved = [getattr(module, name) for module, name in switches]
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    try:
        for module, name in switches:
            setattr(module, name, True)
        os.environ.update(dict.fromkeys(saved_env, "1"))
        yield
    finally:
        for (module, name), value in zip(switches, saved, strict=True):
            setattr(module, name, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def metric_name(key: str) -> str:
    """lm-eval's "exact_match,none" -> "exact_match"; a named filter stays: "exact_match_strict-match"."""
    metric, _, filter_name = key.partition(",")
    return metric if filter_name in ("", "none") else f"{metric}_{filter_name}"


def flatten_results(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """`{task: {metric: value}}` from simple_evaluate's results (groups included).

    Stderr entries are dropped (bootstrap is off); `n` is the number of items scored.
    """
    scores: dict[str, dict[str, float]] = {}
    for task, values in results.get("results", {}).items():
        for key, value in values.items():
            name = metric_name(key)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not numeric or "stderr" in name or name == "sample_len":
                continue
            scores.setdefault(task, {})[name] = float(value)
        if task in results.get("n-samples", {}):
            scores.setdefault(task, {})["n"] = results["n-samples"][task]["effective"]
    return scores


def sample_records(samples: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Compact samples.jsonl lines: the prompt, the target, what the model said, its scores."""
    records = []
    for task, docs in samples.items():
        for doc in docs:
            args = doc["arguments"][0] if doc["arguments"] else []
            records.append(
                {
                    "lm_eval_task": task,
                    "prompt": args[0] if args else None,
                    "answer": doc.get("target"),
                    "prediction": doc.get("filtered_resps"),
                    **{m: doc[m] for m in doc.get("metrics", []) if m in doc},
                }
            )
    return records


@dataclass
class LmEvalTasks:
    """Score the model with `lm_eval.simple_evaluate` on `tasks`, in process, offline by default.

    `limit` caps items per task (None: all), `num_fewshot` sets in-context examples (None: each
    task's own default), `include_path` adds directories of the user's own task YAMLs.
    `offline=True` keeps the Hugging Face hub out of it (set false for hub-hosted tasks).
    `apply_chat_template=True` renders every prompt with the tokenizer's chat template (few-shot
    examples as earlier turns); a tokenizer without one is a ConfigError (set it false for a base model).
    """

    tasks: list[str] = field(default_factory=lambda: ["tiny_arithmetic"])
    limit: int | float | None = 50
    num_fewshot: int | None = None
    batch_size: int | None = None
    include_path: list[str] = field(default_factory=list)
    apply_chat_template: bool = True
    offline: bool = True
    fewshot_seed: int = 1234

    def __post_init__(self) -> None:
        self.tasks = list(self.tasks)
        self.include_path = list(self.include_path)
        if not self.tasks:
            raise ConfigError("eval lm-eval entry: `tasks` is empty; name at least one lm-eval task")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise ConfigError(f"eval lm-eval num_fewshot={self.num_fewshot}: expected >= 0 or null")
        # Unknown task names stop the run here, before the model loads.
        self.manager = resolve_tasks(self.tasks, self.include_path)

    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        """`{"tasks": {task: {metric: value}}, "samples": [...]}` for the configured tasks."""
        with hub_offline() if self.offline else nullcontext():
            return self._run(model, tokenizer, batch_size)

    def _run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        from lm_eval import simple_evaluate

        # lm-eval logs every request batch at INFO; keep the run's log readable.
        logging.getLogger("lm_eval").setLevel(max(logging.getLogger("lm_eval").level, logging.WARNING))
        from lm_eval.models.huggingface import HFLM

        size = self.batch_size or batch_size
        if self.apply_chat_template and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "eval lm-eval apply_chat_template=true but the tokenizer has no chat template: set "
                "model.chat_template=<file or text>, or eval.tasks.lm_eval.apply_chat_template=false"
            )
        with in_eval_mode(model):  # HFLM puts the model in eval mode; training resumes in train mode
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=size, max_batch_size=size)
            results = simple_evaluate(
                model=lm,
                tasks=self.tasks,
                num_fewshot=self.num_fewshot,
                limit=self.limit,
                task_manager=self.manager,
                apply_chat_template=self.apply_chat_template,
                fewshot_as_multiturn=self.apply_chat_template,  # few-shot examples as earlier turns
                bootstrap_iters=0,  # stderr by bootstrap costs minutes; seeds give the spread
                log_samples=True,
                # None: leave the global RNGs alone, training after the baseline eval must not change
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
                fewshot_random_seed=self.fewshot_seed,
            )
        return {"tasks": flatten_results(results), "samples": sample_records(results.get("samples", {}))}

"""Several task adapters on one base: each alone, their weighted merges, and per-task switching.

Every adapter is a LoRA trained on one tiny-world task by an ordinary run. peft does the work:
`PeftModel.load_adapter` puts them side by side under their task names, `add_weighted_adapter`
builds a merged adapter (combination `cat`: the exact weighted sum of the updates, sum_i w_i B_i A_i;
`linear`: a rank-r average of A's and B's, which adds cross terms; `svd`, `ties`, ... as peft
offers), and `set_adapter` picks one per task at inference ("routed": each task answered by the
adapter trained on it). Learned or training-free routers over the same experts are extra rows
(`add_rows`): Arrow's per-token routing (`arrow_model`), an X-LoRA run (adapter=xlora), and a
single multi-task LoRA for reference. Every variant is scored on every task with the exact-match eval.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from peft import ArrowConfig, PeftModel, create_arrow_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tunelab.core.config import ConfigError
from tunelab.evaluation.exact_match import ExactMatchTask
from tunelab.results.stats import Interval, t_interval
from tunelab.world import tasks

BASE = "base (no adapter)"
ROUTED = "routed (per-task adapter)"


def load_adapters(base: PreTrainedModel, adapters: dict[str, Path]) -> PeftModel:
    """One PeftModel holding every adapter under its own name."""
    if not adapters:
        raise ConfigError("no adapters given: pass at least one NAME=RUN_DIR")
    names = list(adapters)
    model = PeftModel.from_pretrained(base, adapters[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(adapters[name], adapter_name=name)
    return model


def add_merge(model: PeftModel, names: Sequence[str], weights: Sequence[float], combination: str) -> str:
    """Add the weighted merge of `names` as a new adapter; returns its name."""
    if len(weights) != len(names):
        raise ConfigError(f"weights={list(weights)}: expected one weight per adapter {list(names)}")
    merged = f"merge_{combination}"
    model.add_weighted_adapter(list(names), list(weights), merged, combination_type=combination)
    return merged


def exact_match_task(task: str, limit: int | None) -> ExactMatchTask:
    """The chat exact-match eval of a task, with room for its longest answer (+ the end token)."""
    longest = max(len(ex.completion) for ex in tasks.load_split(task, "test"))
    return ExactMatchTask(task=task, style="chat", limit=limit, max_new_tokens=longest + 1)


def score(model: PeftModel, tokenizer, task_names: list[str], limit: int | None, batch_size: int) -> dict:
    """`{task: exact match}` of the model's active adapter."""
    return {
        t: exact_match_task(t, limit).run(model, tokenizer, batch_size)["exact_match"] for t in task_names
    }


def compare(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    task_names: list[str],
    combinations: Sequence[str] = ("cat",),
    weights: Sequence[float] | None = None,
    limit: int | None = 200,
    batch_size: int = 100,
) -> dict[str, dict[str, float]]:
    """`{variant: {task: exact match}}` for the base, each adapter, each merge, and routing."""
    singles = list(model.peft_config)
    weights = list(weights) if weights is not None else [1.0] * len(singles)
    results: dict[str, dict[str, float]] = {}
    with model.disable_adapter():
        results[BASE] = score(model, tokenizer, task_names, limit, batch_size)
    for name in singles:
        model.set_adapter(name)
        results[name] = score(model, tokenizer, task_names, limit, batch_size)
    for combination in combinations:
        merged = add_merge(model, singles, weights, combination)
        model.set_adapter(merged)
        results[merged] = score(model, tokenizer, task_names, limit, batch_size)
    # Switching is exact, so routing scores each task with the adapter named after it.
    results[ROUTED] = {t: results[t][t] if t in results else float("nan") for t in task_names}
    return results


def arrow_model(base: PreTrainedModel, adapters: dict[str, Path], top_k: int = 1) -> PeftModel:
    """Arrow routing (Ostapenko et al., 2024, arXiv:2405.11157) over the task LoRAs: per token, the
    `top_k` experts whose prototype (the top right-singular vector of each expert's B·A) best
    aligns with the hidden state, mixed by a softmax of those alignments. Training-free: peft's
    `create_arrow_model` builds the prototypes from the adapters alone."""
    config = ArrowConfig(top_k=min(top_k, len(adapters)), rng_seed=0)
    return create_arrow_model(base, [str(p) for p in adapters.values()], config)


def add_rows(
    results: dict[str, dict[str, float]],
    models: dict[str, PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    task_names: list[str],
    limit: int | None = 200,
    batch_size: int = 100,
) -> dict[str, dict[str, float]]:
    """`results` plus one row per extra model (Arrow, an X-LoRA run, a multi-task LoRA), scored alike."""
    for label, model in models.items():
        results[label] = score(model, tokenizer, task_names, limit, batch_size)
    return results


def to_markdown(results: dict[str, dict[str, float]], task_names: list[str]) -> str:
    """Rows: variants; columns: tasks and their mean; bold: best per column."""
    cols = [*task_names, "mean"]
    table = {v: {**s, "mean": sum(s[t] for t in task_names) / len(task_names)} for v, s in results.items()}
    best = {c: max(row[c] for row in table.values()) for c in cols}
    lines = ["| adapter | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for variant, row in table.items():
        cells = [f"**{row[c]:.3f}**" if row[c] == best[c] else f"{row[c]:.3f}" for c in cols]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nExact match on held-out chat items of each task.\n"


def write_results(out: Path, results: dict, task_names: list[str], meta: dict) -> None:
    """results.json and table.md under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"scores": results, **meta}, indent=2) + "\n")
    (out / "table.md").write_text(to_markdown(results, task_names))


def over_seeds(
    runs: Sequence[dict[str, dict[str, float]]], task_names: list[str]
) -> dict[str, dict[str, Interval]]:
    """`{variant: {task or "mean": mean ± 95% t-interval over the runs}}`: one `scores` dict per seed,
    each variant present in every run (its task mean taken per seed first)."""
    variants = [v for v in runs[0] if all(v in run for run in runs)]
    missing = sorted({v for run in runs for v in run} - set(variants))
    if missing:
        raise ConfigError(f"variants {missing} are not in every seed's results: rerun those seeds alike")
    summary: dict[str, dict[str, Interval]] = {}
    for variant in variants:
        per_seed = [
            {**run[variant], "mean": sum(run[variant][t] for t in task_names) / len(task_names)}
            for run in runs
        ]
        summary[variant] = {c: t_interval([row[c] for row in per_seed]) for c in [*task_names, "mean"]}
    return summary


def seeds_markdown(summary: dict[str, dict[str, Interval]], task_names: list[str]) -> str:
    """Rows: variants; cells: mean ± half-width of the 95% t-interval; bold: best mean per column."""
    cols = [*task_names, "mean"]
    best = {c: max(row[c].mean for row in summary.values()) for c in cols}
    n = next(iter(next(iter(summary.values())).values())).n
    lines = ["| adapter | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for variant, row in summary.items():
        cells = []
        for c in cols:
            text = f"{row[c].mean:.3f}" + (
                f" ± {row[c].half_width:.3f}" if row[c].half_width is not None else ""
            )
            cells.append(f"**{text}**" if row[c].mean == best[c] else text)
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + f"\n\nExact match on held-out chat items of each task: mean ± 95% t-interval over {n} seeds.\n"
    )

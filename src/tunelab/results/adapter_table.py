"""The README "Adapters" table from an adapter sweep's run directories (`tunelab table preset=adapters`).

    tunelab table preset=adapters results=results/adapters/multirun_<time> [out=DIR]

One row per run (metrics.json, status completed): trainable %, bytes of weights, gradients and
optimizer state measured after training, exact match before -> after, the final training loss
and training time.
The general, seed-aggregating table is `tunelab table` (preset=sweep); this one stays small on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [
    "adapter", "trainable %", "weights MB", "grads MB", "optim state MB", "total MB",
    "arithmetic EM (before → after)", "reverse EM (before → after)", "loss", "train s",
]  # fmt: skip


def _mb(n: float) -> str:
    return f"{n / 2**20:.2f}"


def _em(m: dict, task: str) -> str:
    before, after = m.get(f"baseline/{task}/exact_match"), m.get(f"eval/{task}/exact_match")
    if after is None:
        return "–"
    return f"{before:.2f} → {after:.2f}" if before is not None else f"{after:.2f}"


def row(m: dict) -> list[str]:
    """One table row from one run's metrics."""
    weights, grads, state = m["weight_bytes"], m["grad_bytes"], m["optimizer_state_bytes"]
    # training time = tokens / throughput: the fit alone, without evaluation or saving
    seconds = m["train_tokens"] / m["train_tokens_per_sec"] if m.get("train_tokens_per_sec") else 0.0
    return [
        m["adapter"], f"{m['trainable_percent']:.2f}", _mb(weights), _mb(grads), _mb(state),
        _mb(weights + grads + state), _em(m, "arithmetic"), _em(m, "reverse"),
        f"{m['train_loss_final']:.3f}" if "train_loss_final" in m else "–", f"{seconds:.0f}",
    ]  # fmt: skip


def _job_order(path: Path) -> tuple[int, str]:
    """Sweep jobs in launch order: `<job number>_<overrides>/metrics.json`, numerically."""
    number = path.parent.name.split("_", 1)[0]
    return (int(number) if number.isdigit() else -1, str(path))


def collect(results: Path) -> list[dict]:
    """The completed runs under `results`, in sweep-job order."""
    runs = [json.loads(p.read_text()) for p in sorted(results.rglob("metrics.json"), key=_job_order)]
    return [m for m in runs if m.get("status") == "completed" and "weight_bytes" in m]


def markdown(runs: list[dict]) -> str:
    """A Markdown table, one row per run."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(m)) + " |" for m in runs]
    return "\n".join(lines) + "\n"

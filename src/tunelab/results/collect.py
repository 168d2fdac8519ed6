"""Find run directories under a results folder and group them into configurations."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# Overrides that do not define a configuration: seeds are averaged over, paths are bookkeeping.
NOT_CONFIG_KEYS = ("seed", "name", "resume", "hydra.", "hparams_search")


@dataclass
class Run:
    """One run directory (relative to the results folder it was collected from) and its metrics."""

    path: Path
    metrics: dict
    root: Path = Path(".")

    @property
    def directory(self) -> Path:
        return self.root / self.path

    @property
    def completed(self) -> bool:
        return self.metrics.get("status") == "completed"

    @property
    def seed(self) -> int | None:
        return self.metrics.get("seed")

    @property
    def config_label(self) -> str:
        """The run's overrides minus seed and bookkeeping: what makes it a table row."""
        kept = [
            o for o in self.metrics.get("overrides", []) if not o.split("=")[0].startswith(NOT_CONFIG_KEYS)
        ]
        return " ".join(sorted(kept)) or "(defaults)"

    @property
    def command(self) -> str:
        return self.metrics.get("command", "")


@dataclass
class Row:
    """All runs of one configuration (one per seed)."""

    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.completed]

    @property
    def n_failed(self) -> int:
        return len(self.runs) - len(self.completed)

    def values(self, metric: str) -> dict[int | None, float]:
        """`{seed: value}` of a metric over the completed runs that have it."""
        return {
            r.seed: float(r.metrics[metric])
            for r in self.completed
            if isinstance(r.metrics.get(metric), (int, float))
        }

    @property
    def command(self) -> str:
        """The command of the row's first run with its seed removed: add `-m seed=...`."""
        words = self.runs[0].command.split()
        return " ".join(w for w in words if not w.startswith("seed="))


def collect_runs(root: Path) -> list[Run]:
    """Every run directory (a folder with metrics.json) below `root`, sorted by path."""
    runs = []
    for path in sorted(root.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg}); is a run still writing it?") from err
        runs.append(Run(path=path.parent.relative_to(root), metrics=metrics, root=root))
    return runs


def group_rows(runs: list[Run]) -> list[Row]:
    """Runs grouped by configuration label, in first-seen order."""
    rows: dict[str, Row] = {}
    for run in runs:
        rows.setdefault(run.config_label, Row(label=run.config_label)).runs.append(run)
    return list(rows.values())

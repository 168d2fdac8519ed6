"""Sweep plumbing: one failed job never stops the others, and the sweep's exit code says so."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    """Whether this job is one point of a `-m` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_job(cfg: DictConfig) -> float | None:
    """The Hydra task: train, and return `cfg.optimized_metric` for hyper-parameter sweepers.

    In a sweep a failed job is recorded (metrics.json says "failed" with the error) and the
    sweep goes on; a single run re-raises so the process exits non-zero.
    """
    from tunelab.core.quiet import quiet_libraries

    quiet_libraries()  # again here: launchers such as joblib run jobs in fresh worker processes
    from tunelab.training.run import train  # heavy; the sweep callback below must stay light

    try:
        metrics = train(cfg)
    except Exception:
        if not in_multirun():
            raise
        log.exception("sweep job failed; the remaining jobs still run")
        return math.nan
    if metrics.get("status") == "preempted":  # checkpointed and recorded: now SLURM may stop us
        from tunelab.training.callbacks.preemption import requeue_slurm_job

        requeue_slurm_job(cfg.preemption.signal)
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} is not in metrics.json; have {sorted(metrics)}")
    return float(metrics[name])


def sweep_statuses(sweep_dir: Path) -> dict[str, str]:
    """`{job dir name: status}` for every job of a sweep directory."""
    statuses = {}
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        statuses[path.parent.name] = json.loads(path.read_text()).get("status", "unknown")
    return statuses


_incomplete_jobs: list[str] = []


class SweepStatusCallback(Callback):
    """After a sweep, report the jobs that did not complete (train.py then exits non-zero).

    Hydra turns exceptions raised in callbacks into warnings, so the verdict is kept here and
    read by `sweep_exit_code()` once Hydra returns.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        statuses = sweep_statuses(Path(config.hydra.sweep.dir))
        bad = [f"{job} ({status})" for job, status in statuses.items() if status != "completed"]
        _incomplete_jobs.extend(bad)
        if bad:
            print(
                f"{len(bad)} of {len(statuses)} sweep jobs did not complete: {', '.join(bad)}",
                file=sys.stderr,
            )


def sweep_exit_code() -> int:
    """1 if the sweep that just ran had a job that did not complete, else 0."""
    return 1 if _incomplete_jobs else 0

"""Sweep plumbing: one failed job never stops the others, and the sweep's exit code says so."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from tunelab.core.config import USER_ERRORS
from tunelab.core.schema import validate as validate_config
from tunelab.training.callbacks.signals import Terminated

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    """Whether this job is one point of a `-m` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


USER_ERROR_EXIT = 2  # a bad config or data file: the user fixes the command, nothing crashed


def wants_traceback(cfg: DictConfig) -> bool:
    """Tracebacks for user errors only on request: HYDRA_FULL_ERROR=1 or `debug=true`."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or bool(cfg.get("debug", False))


def one_line(err: BaseException) -> str:
    """`ConfigError: <message>` on one line (a message's own newlines become spaces)."""
    return f"{type(err).__name__}: " + " ".join(str(err).split())


def run_job(cfg: DictConfig) -> float | None:
    """The Hydra task: train, and return `cfg.optimized_metric` for hyper-parameter sweepers.

    In a sweep a failed job is recorded (metrics.json says "failed" with the error) and the
    sweep goes on; a single run exits non-zero: a user error (ConfigError, DataError) with one line
    on stderr and exit code 2, any other error with its traceback.
    """
    from tunelab.core.quiet import quiet_libraries

    quiet_libraries()  # again here: launchers such as joblib run jobs in fresh worker processes
    try:
        if not in_multirun():  # a bad value answers before the heavy imports (a sweep job records it)
            validate_config(cfg)
        from tunelab.training.run import train  # heavy; the sweep callback below must stay light

        metrics = train(cfg)
    except USER_ERRORS as err:
        if in_multirun():
            log.error("sweep job refused: %s; the remaining jobs still run", one_line(err))
            return math.nan
        if wants_traceback(cfg):
            traceback.print_exc()
        print(f"tunelab: {one_line(err)}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None
    except Terminated:
        if in_multirun():  # a SIGTERM stops the whole sweep: say which jobs never ran
            print(f"sweep stopped by SIGTERM in job {cfg.get('name')!r}: the remaining jobs did not run",
                  file=sys.stderr)  # fmt: skip
        raise
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

"""A Hydra sweeper that launches an explicit list of jobs, not a cartesian product.

compare.py decides which jobs still need running (the rest come from its cache) and writes them to
a JSON file; `python train.py -m hydra/sweeper=job_list hydra.sweeper.jobs_file=F` hands them to
whichever launcher is configured, so the jobs of a comparison scale out the way a sweep does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


def read_jobs(path: str | Path) -> list[list[str]]:
    """The job list: a JSON list of override lists."""
    jobs = json.loads(Path(path).read_text())
    if not isinstance(jobs, list) or not all(isinstance(j, list) for j in jobs):
        raise ValueError(f"{path}: expected a JSON list of override lists")
    return [[str(o) for o in job] for job in jobs]


class JobListSweeper(Sweeper):
    """Launch every job of `jobs_file` (command-line overrides appended to each)."""

    def __init__(self, jobs_file: str, max_batch_size: int | None = None) -> None:
        self.jobs_file = jobs_file
        self.max_batch_size = max_batch_size
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        jobs = [[*arguments, *job] for job in read_jobs(self.jobs_file)]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size or max(len(jobs), 1)
        returns = []
        for start in range(0, len(jobs), size):
            returns.append(self.launcher.launch(jobs[start : start + size], initial_job_idx=start))
        return returns

"""Preemption (SLURM requeue): on a signal, checkpoint at the next step boundary and stop.

SLURM sends the signal chosen by `#SBATCH --signal=USR1@<seconds>` before a preemption or the
time limit. The run finishes its current optimizer step, writes `checkpoints/last.ckpt`, marks
metrics.json "preempted", then (once metrics.json is written) has SLURM requeue the job and exits.
The requeued job runs the same command with `resume=auto` and the same run directory, so it
continues from that checkpoint by itself.

Two requeue paths, one decision: under a plain `sbatch`, tunelab runs `scontrol requeue` itself
(exit 0). Under hydra's submitit launcher (which asks SLURM for SIGUSR2), submitit's own handler
was installed first; tunelab takes the signal, checkpoints, and then hands it back to that handler,
which requeues through submitit (keeping its timeout count) and exits without a result, so the
launcher keeps waiting for the requeued job instead of seeing a finished one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from tunelab.training.callbacks.signals import early_requests, original_handler

log = logging.getLogger(__name__)


class PreemptionCheckpoint(Callback):
    """Turns a signal into: checkpoint after the current step, then stop training."""

    def __init__(self, signal_name: str, checkpoint_path: Path) -> None:
        self.signum = signal.Signals[signal_name]
        self.checkpoint_path = checkpoint_path
        self.requested = self.signum in early_requests  # the signal came while the run started up
        self.preempted_at_step: int | None = None
        self.previous_handler = None

    def report(self) -> dict[str, Any]:
        """The step at which the signal stopped training, when it did."""
        return {} if self.preempted_at_step is None else {"preempted_at_step": self.preempted_at_step}

    def _request(self, signum, frame) -> None:
        self.requested = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed here, after Lightning's own SLURM handler, so that this one decides.
        self.previous_handler = signal.signal(self.signum, self._request)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # submitit's handler back in place: `requeue_slurm_job` hands the preemption over to it.
        if self.previous_handler is not None:
            signal.signal(self.signum, self.previous_handler)
            self.previous_handler = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx):
        at_step_boundary = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if self.requested and at_step_boundary and self.preempted_at_step is None:
            trainer.save_checkpoint(self.checkpoint_path)
            self.preempted_at_step = trainer.global_step
            trainer.should_stop = True


def under_submitit() -> bool:
    """Whether this process is a job that submitit started (hydra/launcher=slurm)."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def requeue_plan() -> str | None:
    """What `requeue_slurm_job` will do, for metrics.json (written before it runs); None outside SLURM."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return None
    return f"submitit requeues SLURM job {job_id}" if under_submitit() else f"scontrol requeue {job_id}"


def requeue_slurm_job(signal_name: str) -> None:
    """Requeue this SLURM job after a preemption checkpoint; a no-op outside SLURM.

    Call it last, once metrics.json is written: SLURM stops the running job as it requeues it.
    Under submitit this raises SystemExit (from submitit's handler) so that no result is recorded.
    """
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return
    # Logged, so train.log keeps it: the job's stdout file may lose its last lines as SLURM stops it.
    log.warning("preemption checkpoint written: %s", requeue_plan())
    signum = signal.Signals[signal_name]
    handler = original_handler(signum)  # submitit's, not tunelab's start-up handler
    if under_submitit() and callable(handler):
        handler(signum, None)  # submitit: checkpoint its job description, scontrol requeue, sys.exit
        return
    subprocess.run(["scontrol", "requeue", job_id], check=True)

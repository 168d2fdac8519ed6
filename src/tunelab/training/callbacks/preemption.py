"""Preemption (SLURM requeue): on a signal, checkpoint at the next step boundary and stop.

SLURM sends the signal chosen by `#SBATCH --signal=USR1@<seconds>` before a preemption or the
time limit. The run finishes its current optimizer step, writes `checkpoints/last.ckpt`, marks
metrics.json "preempted", asks SLURM to requeue the job (when it runs under SLURM) and exits 0.
The requeued job runs the same command with `resume=auto` and the same run directory, so it
continues from that checkpoint by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from tunelab.training.callbacks.signals import early_requests


class PreemptionCheckpoint(Callback):
    """Turns a signal into: checkpoint after the current step, then stop training."""

    def __init__(self, signal_name: str, checkpoint_path: Path) -> None:
        self.signum = signal.Signals[signal_name]
        self.checkpoint_path = checkpoint_path
        self.requested = self.signum in early_requests  # the signal came while the run started up
        self.preempted_at_step: int | None = None

    def _request(self, signum, frame) -> None:
        self.requested = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed here, after Lightning's own SLURM handler, so that this one decides.
        signal.signal(self.signum, self._request)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx):
        at_step_boundary = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if self.requested and at_step_boundary and self.preempted_at_step is None:
            trainer.save_checkpoint(self.checkpoint_path)
            self.preempted_at_step = trainer.global_step
            trainer.should_stop = True


def requeue_slurm_job() -> str | None:
    """`scontrol requeue` this SLURM job; returns what was done, or None outside SLURM."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return None
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    return f"requeued SLURM job {job_id}"

"""Fault injection for the reliability tests: crash a run at a chosen point, as a real crash would.

Configured by the `faults` keys (all null by default). They exist so that tests and
docs/reliability.md can kill a run at an exact step instead of racing a timer.
"""

from __future__ import annotations

import os
import signal

import lightning as L
from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    """SIGKILLs the process right after optimizer step `step`, before that step's checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def fault_callbacks(kill_at_step: int | None = None, **_: object) -> list[Callback]:
    """The fault-injection callbacks a `faults` config asks for."""
    return [KillAtStep(kill_at_step)] if kill_at_step is not None else []

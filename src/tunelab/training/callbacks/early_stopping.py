"""Lightning's EarlyStopping, reporting where it stopped and its best value to metrics.json."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping


class ReportingEarlyStopping(EarlyStopping):
    """EarlyStopping with `report()`: the step it stopped at (None if the run reached max_steps)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer

    def report(self) -> dict[str, Any]:
        """`early_stopping/stopped_at_step` and `early_stopping/best_<monitor>`."""
        stopped = self.wait_count >= self.patience
        return {
            "early_stopping/stopped_at_step": self._trainer.global_step if stopped else None,
            f"early_stopping/best_{self.monitor}": float(self.best_score),
        }

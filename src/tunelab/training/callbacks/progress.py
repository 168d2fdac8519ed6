"""The training progress bar: steps of the run, ETA and loss, without Lightning's "Epoch 0/-2"."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Rich progress bar labelled by the run's step budget rather than an epoch count.

    tunelab trains by `max_steps` with `max_epochs: -1`, for which Lightning labels the bar
    "Epoch 0/-2".
    """

    def _get_train_description(self, current_epoch: int) -> str:
        max_steps = self.trainer.max_steps
        budget = f"{max_steps} steps" if max_steps and max_steps > 0 else "training"
        return f"train ({budget}, epoch {current_epoch})"

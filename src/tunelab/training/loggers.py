"""Logger factories that need more than a Lightning class: W&B with offline fallback, and a CSV
logger that keeps a resumed run's earlier rows."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes metrics.csv when it starts in a non-empty directory: every row
    before a resume point would be lost. This one keeps the file; at its first save it drops only
    the rows at or after the first step it is about to write (a killed run's steps that the resumed
    run repeats; for a fresh run in a used directory, every old row), then appends."""

    def __init__(self, log_dir: str) -> None:
        self._first_save = True
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        pass  # keep metrics.csv: `save` decides which rows stay

    def save(self) -> None:
        if self._first_save and self.metrics:
            self._first_save = False
            self._keep_rows_before(min(int(m["step"]) for m in self.metrics))
        super().save()

    def _keep_rows_before(self, step: int) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") not in (None, "") and int(float(r["step"])) < step]
        if not rows:
            path.unlink()
            return
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        self.metrics_keys = sorted(header)  # new keys rewrite the header with the old ones kept


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` whose metrics.csv survives a resume (see `_AppendingWriter`)."""

    @property
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def wandb_has_credentials() -> bool:
    """An API key in the environment or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text()


def wandb_logger(
    save_dir: str,
    project: str,
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    mode: str = "auto",
    job_type: str | None = None,
    extra_tags: list[str] | None = None,
) -> WandbLogger:
    """A W&B logger; `mode="auto"` logs online with credentials and offline without them.

    Offline runs land in `<run dir>/wandb/` and can be uploaded later with `wandb sync`.
    """
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        group=group,
        name=name,
        tags=[t for t in [*(tags or []), *(extra_tags or [])] if t],
        job_type=job_type,  # compare.py: the stage (tune / confirm)
        offline=mode == "offline",
        mode=mode,
        # Configs go to W&B from config.yaml by tunelab, never from the environment.
        settings={"_disable_meta": False, "console": "off"},
    )


def finish_wandb() -> None:
    """Close the active W&B run, so that the next job of a sweep starts its own."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()

"""Exact resume: what a checkpoint must hold beyond Lightning's own state, and how it is restored.

Lightning restores the weights, optimizer, LR scheduler, global step and logger step. It does not
restore the data position inside an epoch (a plain DataLoader restarts its epoch from the first
batch) nor the random number generators. `ResumableSampler` draws each epoch's order from
(seed, epoch) alone and can start an epoch part-way; `ResumeState` stores the RNG states and a
fingerprint of the training data in the checkpoint and puts both back on resume, so the resumed
run takes the same batches, with the same dropout masks, as the run that was never stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tunelab.core.config import ConfigError
from tunelab.data.sampler import ResumableSampler
from tunelab.training.callbacks import integrity


def rng_states() -> dict[str, Any]:
    """Every global random number generator a training step may draw from."""
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_as_tensors(np.random.get_state()),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _numpy_state_as_tensors(state: tuple) -> tuple:
    # Checkpoints load with weights_only=True, which refuses numpy arrays but takes tensors.
    name, keys, pos, has_gauss, cached = state
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back the states `rng_states` returned."""
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def data_fingerprint(examples: list[dict[str, list[int]]]) -> str:
    """sha256 of the tokenized training examples: any change of file, filter or tokenizer shows."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example, sort_keys=True).encode())
    return digest.hexdigest()


class ResumeState(Callback):
    """Saves RNG states and the data fingerprint in every checkpoint; restores them on resume.

    The RNG states are captured when the checkpoint is written (right after an optimizer step) and
    put back just before the first batch after the restart, after Lightning has built the data
    iterator; the data position is derived from the restored global step.
    """

    def __init__(self, data_sha256: str, force: bool = False) -> None:
        self.data_sha256 = data_sha256
        self.force = force
        self._pending_rng: dict[str, Any] | None = None
        self.resumed_from_step: int | None = None

    def report(self) -> dict[str, Any]:
        """The step this fit resumed from (None for a fresh start)."""
        return {"resumed_from_step": self.resumed_from_step}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states(), "data_sha256": self.data_sha256}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("data_sha256")
        if saved != self.data_sha256 and not self.force:
            raise ConfigError(
                "resume: the training data changed since the checkpoint was written (sha256 of the "
                f"tokenized examples {saved[:12] if saved else None} -> {self.data_sha256[:12]}); "
                "resume on the data it was trained on, or pass resume_force=true"
            )
        self._pending_rng = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            return
        self.resumed_from_step = trainer.global_step
        sampler = getattr(trainer.train_dataloader, "sampler", None)
        if isinstance(sampler, ResumableSampler):
            consumed = trainer.global_step * trainer.accumulate_grad_batches
            batches_per_epoch = len(trainer.train_dataloader)
            epoch, done = divmod(consumed, batches_per_epoch)
            sampler.start_at(epoch, done * trainer.train_dataloader.batch_size)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx):
        if self._pending_rng is not None:
            set_rng_states(self._pending_rng)
            self._pending_rng = None


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (most often: its disk is full)."""


def write_failure(path: Path, err: BaseException) -> str:
    """One line: which checkpoint, how much room its disk had left, and what the writer said."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free"
    except OSError:
        free = "free space unknown"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{path}: writing the checkpoint failed ({free} on its disk): {first}; the previous one is kept"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to `<name>.tmp`, syncs it, then renames it over `<name>`, with its sha256
    in `<name>.sha256` and the checkpoint it replaced kept as `<name>.prev` (see `integrity`).

    A crash while writing leaves the previous checkpoint whole. `kill_while_saving_step` is fault
    injection for the reliability tests: the process SIGKILLs itself half-way through writing the
    checkpoint of that global step.
    """

    def __init__(self, kill_while_saving_step: int | None = None) -> None:
        super().__init__()
        self.kill_while_saving_step = kill_while_saving_step
        self.seconds = 0.0  # spent writing checkpoints: reported apart from the training step time

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        started = time.perf_counter()
        self._write(checkpoint, Path(path))
        self.seconds += time.perf_counter() - started

    def _write(self, checkpoint: dict[str, Any], path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with tmp.open("wb") as fh:
                writer = integrity.HashingWriter(fh)
                torch.save(checkpoint, writer)
                if checkpoint.get("global_step") == self.kill_while_saving_step:
                    fh.truncate(fh.tell() // 2)
                    fh.flush()
                    os.kill(os.getpid(), 9)
                fh.flush()
                os.fsync(fh.fileno())
            integrity.commit(tmp, path, writer.digest.hexdigest())
        except (OSError, RuntimeError) as err:  # torch reports a full disk as "unexpected pos"
            raise CheckpointWriteError(write_failure(path, err)) from err
        finally:  # a failed write (disk full) leaves no .tmp behind; the previous checkpoint stays
            tmp.unlink(missing_ok=True)

    def remove_checkpoint(self, path) -> None:
        integrity.remove(Path(path))


def previous_config_diff(previous: dict, current: dict, ignored: set[str]) -> list[str]:
    """`key: old -> new` for every leaf that differs between two resolved configs."""
    old, new = _flatten(previous), _flatten(current)
    changed = []
    for key in sorted(old.keys() | new.keys()):
        if any(key == i or key.startswith(i + ".") for i in ignored):
            continue
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            changed.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return changed


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: tree}

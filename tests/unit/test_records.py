"""Faults must not lose records: metrics.csv across a resume, checkpoint digests and fallback,
disk full, the run-directory lock, SIGTERM and early preemption, exploding weights, run totals."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tunelab.core.config import ConfigError
from tunelab.core.io import is_disk_full, remove_partial_files, write_json_atomic
from tunelab.training.callbacks import integrity
from tunelab.training.callbacks.guards import NonFiniteError, TrainingGuards
from tunelab.training.callbacks.lock import RunLock
from tunelab.training.callbacks.preemption import PreemptionCheckpoint
from tunelab.training.callbacks.resume import AtomicCheckpointIO
from tunelab.training.callbacks.signals import Terminated, install_startup_handlers
from tunelab.training.callbacks.totals import RunTotals, previous_config
from tunelab.training.loggers import ResumableCSVLogger


def csv_steps(path: Path) -> list[tuple[int, str]]:
    with path.open(newline="") as fh:
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(fh)]


def log(run_dir: Path, steps: range, tag: str) -> None:
    logger = ResumableCSVLogger(save_dir=str(run_dir), name="", version="")
    for step in steps:
        logger.log_metrics({"loss": float(step), f"{tag}_only": 1.0}, step=step)
    logger.save()


def test_a_resumed_run_keeps_the_rows_before_its_first_step(tmp_path):
    log(tmp_path, range(0, 7), "first")  # killed after step 6; its checkpoint was at step 4
    log(tmp_path, range(4, 10), "second")  # the resumed run repeats 4..6
    assert [s for s, _ in csv_steps(tmp_path / "metrics.csv")] == list(range(10))
    log(tmp_path, range(0, 3), "fresh")  # a fresh run in the same directory: the old rows go
    assert [s for s, _ in csv_steps(tmp_path / "metrics.csv")] == [0, 1, 2]


def test_a_logger_that_never_logs_leaves_metrics_csv_alone(tmp_path):
    log(tmp_path, range(0, 5), "first")
    before = (tmp_path / "metrics.csv").read_bytes()
    logger = ResumableCSVLogger(save_dir=str(tmp_path), name="", version="")
    _ = logger.experiment  # Lightning's own writer deletes the file here (a failed resume)
    logger.save()
    assert (tmp_path / "metrics.csv").read_bytes() == before


def test_a_damaged_checkpoint_falls_back_to_the_previous_good_one(tmp_path):
    io = AtomicCheckpointIO()
    last = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 4, "w": torch.arange(1000.0)}, last)
    io.save_checkpoint({"global_step": 8, "w": torch.arange(1000.0) * 2}, last)
    assert integrity.verified(str(last)) == str(last)
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    last.write_bytes(bytes(data))
    fallback = integrity.verified(str(last))
    assert fallback == str(tmp_path / "last.ckpt.prev")
    assert torch.load(fallback, weights_only=True)["global_step"] == 4
    integrity.previous(last).write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"last\.ckpt fails its sha256 check .* no intact previous"):
        integrity.verified(str(last))
    io.remove_checkpoint(last)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_without_a_digest_still_resumes(tmp_path):
    old = tmp_path / "old.ckpt"  # written before digests existed
    torch.save({"global_step": 1}, old)
    assert integrity.verified(str(old)) == str(old)


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_still_marks_the_run_failed_and_leaves_no_tmp(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"status": "running", "name": "n", "seed": 0, "command": "x" * 200})
    monkeypatch.setattr(Path, "write_text", no_space)
    error = "OSError: [Errno 28] No space left on device"
    write_json_atomic(path, {"status": "failed", "error": error, "name": "n", "seed": 0, "big": "y" * 10_000})
    assert json.loads(path.read_text()) == {"status": "failed", "error": error, "name": "n", "seed": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    last = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 4}, last)
    good = last.read_bytes()

    def half_then_full(obj, fh):
        fh.write(b"partial bytes")
        no_space()

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(OSError):
        io.save_checkpoint({"global_step": 8}, last)
    assert last.read_bytes() == good and integrity.intact(last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]


def test_partial_files_are_removed_after_a_disk_full_failure(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "metrics.json.tmp").write_text("{")
    assert remove_partial_files(tmp_path) == ["adapter/adapter_model.safetensors", "metrics.json.tmp"]
    assert [p.name for p in (tmp_path / "adapter").iterdir()] == ["adapter_config.json"]


def test_a_second_process_cannot_take_a_locked_run_directory(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(ConfigError, match=rf"another tunelab process \(pid {os.getpid()}\) is running"):
        RunLock(tmp_path).acquire()  # flock conflicts across open files, even in one process
    first.release()
    RunLock(tmp_path).acquire().release()


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_sigterm_during_start_up_stops_with_exit_code_143(restore_signals):
    install_startup_handlers(None)
    with pytest.raises(Terminated) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.code == 128 + 15 and isinstance(caught.value, SystemExit)


def test_a_preemption_signal_during_start_up_is_kept_for_training(restore_signals, tmp_path):
    install_startup_handlers("SIGUSR1")
    os.kill(os.getpid(), signal.SIGUSR1)  # while the model loads: the process must survive it
    assert PreemptionCheckpoint("SIGUSR1", tmp_path / "last.ckpt").requested
    install_startup_handlers("SIGUSR1")  # the next run of a sweep starts clean
    assert not PreemptionCheckpoint("SIGUSR1", tmp_path / "last.ckpt").requested


def fake_run(weight: torch.Tensor):
    module = torch.nn.Module()
    module.w = torch.nn.Parameter(weight)
    module.frozen = torch.nn.Parameter(torch.full((2,), 1e30), requires_grad=False)  # not trained
    trainer = SimpleNamespace(optimizers=[torch.optim.SGD([module.w], lr=0.1)], global_step=7)
    return trainer, module


def test_exploding_or_non_finite_weights_stop_before_a_checkpoint():
    guards = TrainingGuards(max_weight_norm=1e6)
    guards.on_save_checkpoint(*fake_run(torch.full((4,), 1e5)), {})  # norm 2e5: fine
    with pytest.raises(NonFiniteError, match=r"weight w has norm 2e\+37 before a checkpoint at step 7"):
        guards.on_save_checkpoint(*fake_run(torch.full((4,), 1e37)), {})  # finite, exploding
    with pytest.raises(NonFiniteError, match=r"weight w has norm nan after training"):
        guards.on_train_end(*fake_run(torch.tensor([1.0, float("nan")])))
    half = torch.full((4,), 60000.0, dtype=torch.float16)  # its fp16 norm overflows; the weights do not
    TrainingGuards(max_weight_norm=None).on_save_checkpoint(*fake_run(half), {})


def test_run_totals_round_trip_through_a_checkpoint_and_config_stays_inside(tmp_path):
    module = SimpleNamespace(
        step_losses=[torch.tensor(2.5), torch.tensor(1.25)],
        step_metrics={"acc": [torch.tensor(0.5)]},
        train_tokens=torch.tensor(300),
        fit_seconds_before=3.0,
        _fit_started=0.0,
        device=torch.device("cpu"),
    )
    totals = RunTotals("rank: 8\nlr: 0.001\n")
    totals.setup(None, module, "fit")
    checkpoint = {"callbacks": {"RunTotals": totals.state_dict()}}
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    torch.save(checkpoint, ckpt)

    resumed = SimpleNamespace(step_losses=[], step_metrics={}, train_tokens=torch.tensor(0))
    resumed.fit_seconds_before, resumed.device = 0.0, torch.device("cpu")
    fresh = RunTotals()
    fresh.load_state_dict(torch.load(ckpt, weights_only=True)["callbacks"]["RunTotals"])
    fresh.on_train_start(SimpleNamespace(global_step=2), resumed)
    assert [x.item() for x in resumed.step_losses] == [2.5, 1.25]
    assert [x.item() for x in resumed.step_metrics["acc"]] == [0.5]
    assert resumed.train_tokens.item() == 300 and resumed.fit_seconds_before == 3.0
    # config.yaml gone (a copied checkpoint): the refusal reads the config inside the checkpoint
    assert previous_config(ckpt) == ({"rank": 8, "lr": 0.001}, f"the config stored in {ckpt}")
    (tmp_path / "config.yaml").write_text("rank: 16\n")
    assert previous_config(ckpt)[0] == {"rank": 16}


def test_disk_full_is_found_through_wrapping_and_a_looping_context_chain():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as full:
            raise RuntimeError("saving the adapter failed") from full
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    # instantiate_clearly re-raises a constructor's error from its wrapper: cause and context loop
    inner, outer = ValueError("bad record"), ValueError("wrapper")
    inner.__context__, outer.__cause__ = outer, inner
    assert not is_disk_full(inner)

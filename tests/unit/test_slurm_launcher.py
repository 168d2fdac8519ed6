"""The SLURM launcher presets and the squeue job-state watcher, without a cluster: fake `sacct`
and `squeue` executables on PATH answer as SLURM 22.05 does with accounting off."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import tunelab  # noqa: F401  (registers the config resolvers)
from tests.conftest import ROOT
from tunelab.training import slurm_status


def launcher(name: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hydra/launcher={name}"], return_hydra_config=True)
    return cfg.hydra.launcher


def test_cpu_defaults_request_no_gpu_and_the_gpu_preset_does():
    cpu, gpu = launcher("slurm"), launcher("slurm_gpu")
    assert cpu.gpus_per_node is None and cpu.cpus_per_task == 1 and cpu.mem_gb == 4
    assert gpu.gpus_per_node == 1 and gpu.cpus_per_task == 8 and gpu.mem_gb == 64
    assert cpu._target_ == gpu._target_ and cpu._target_.endswith("SlurmLauncher")
    assert gpu.max_num_timeout == cpu.max_num_timeout == 3  # inherited from slurm.yaml


def fake_command(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def no_accounting(tmp_path, monkeypatch):
    """sacct says accounting is off; squeue knows array job 7 (task 0 starting, task 1 done)."""
    fake_command(tmp_path, "sacct", 'echo "Slurm accounting storage is disabled" >&2; exit 1')
    fake_command(tmp_path, "squeue", 'printf "7_0|CONFIGURING|vm\\n7_1|COMPLETED|vm\\n"')
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    slurm_status.accounting_disabled.cache_clear()
    yield
    slurm_status.accounting_disabled.cache_clear()


def test_states_come_from_squeue_when_accounting_is_off(no_accounting):
    watcher = slurm_status.squeue_watcher_class()(delay_s=600)
    for job in ("7_0", "7_1", "8"):
        watcher.register_job(job)
    watcher.update()
    # CONFIGURING is a starting job (sacct would say RUNNING); 8 is no longer known to squeue: ended
    assert [watcher.get_state(j, mode="cache") for j in ("7_0", "7_1", "8")] == [
        "RUNNING",
        "COMPLETED",
        "GONE",
    ]
    assert not watcher.is_done("7_0", mode="cache")
    assert watcher.is_done("7_1", mode="cache") and watcher.is_done("8", mode="cache")


def test_accounting_off_is_told_apart_from_other_sacct_failures(tmp_path, monkeypatch):
    fake_command(tmp_path, "sacct", 'echo "sacct: error: slurmdbd: connection refused" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    slurm_status.accounting_disabled.cache_clear()
    try:
        assert slurm_status.accounting_disabled() is False  # submitit's own sacct path stays in charge
    finally:
        slurm_status.accounting_disabled.cache_clear()

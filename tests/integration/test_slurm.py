"""tunelab on a real (one-node) SLURM cluster: sweeps through the submitit launcher, preemption
signals that checkpoint, requeue and resume exactly, and DDP under `srun --ntasks=2`.

The cluster is `scripts/slurm_local.sh up` (CI starts it before pytest); without one these tests
skip, saying so. Jobs run on this host, so run directories under tmp_path are shared with them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, read_metrics
from tests.integration.test_distributed_e2e import TOLERANCE
from tests.integration.test_distributed_e2e import step_losses as float_losses
from tests.integration.test_resume_exact import step_losses

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# 40 examples in batches of 8; a checkpoint every 4 steps. 60 steps take ~6 s of training here, so
# the signal sent once the first checkpoint exists lands well before the end.
PREEMPT_RUN = [
    "eval=none", "data.train.size=40", "data.batch_size=8", "trainer.max_steps=60",
    "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "checkpoint_every=4",
    "resume=auto",
]  # fmt: skip
ENV = {"OMP_NUM_THREADS": "1"}  # bitwise-equal losses need the same thread count in every run
JOB_TIMEOUT_S = 240
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def cluster_state() -> str | None:
    """The local node's state from sinfo, or None when there is no SLURM to ask."""
    if not shutil.which("sinfo"):
        return None
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.split()[0].rstrip("*") if out.returncode == 0 and out.stdout.split() else None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    state = cluster_state()
    if state not in ("idle", "mixed", "allocated", "completing"):
        why = (
            "SLURM is not installed"
            if not shutil.which("sinfo")
            else "slurmctld does not answer"
            if state is None
            else f"the node is {state}"
        )
        pytest.skip(f"no SLURM cluster up ({why}): start one with `sudo scripts/slurm_local.sh install up`")


def job_env() -> dict[str, str]:
    """The environment jobs inherit (sbatch/srun export it): this venv's python and tunelab."""
    return {**os.environ, **ENV, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1"}


def job_field(job_id: str, key: str) -> str:
    """One field of `scontrol show job` (slurmctld keeps finished jobs for MinJobAge)."""
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True)
    fields = dict(tok.split("=", 1) for tok in out.stdout.split() if "=" in tok)
    return fields[key]


def final_state(job_id: str, timeout_s: float = 60) -> str:
    """The job's state once it has ended: its result can be written (and the launcher return) while
    SLURM still shows the job RUNNING, then COMPLETING during cleanup."""
    deadline = time.monotonic() + timeout_s
    state = job_field(job_id, "JobState")
    while state in ("RUNNING", "COMPLETING") and time.monotonic() < deadline:
        time.sleep(1)
        state = job_field(job_id, "JobState")
    return state


def submitit_job_dirs(sweep_dir: Path) -> list[str]:
    """SLURM job ids of a sweep, from submitit's log folders (<array id>_<task>, or <id> for one job)."""
    return sorted(p.parent.name for p in (sweep_dir / ".submitit").glob("*/*_log.out"))


def wait_for(predicate, what: str, timeout: float = JOB_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def train_process(args: list[str]) -> subprocess.Popen:
    """`python train.py ARGS` started in the background (outside SLURM), output captured."""
    command = [sys.executable, str(ROOT / "train.py"), *args]
    return subprocess.Popen(
        command, env=job_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finish(proc: subprocess.Popen) -> str:
    """Wait for a background process; its output, after checking it succeeded."""
    output = proc.communicate(timeout=JOB_TIMEOUT_S)[0].decode()
    assert proc.returncode == 0, output[-3000:]
    return output


@pytest.fixture(scope="module")
def reference_losses(tmp_path_factory):
    """The uninterrupted run, outside SLURM, that every preempted run must reproduce step by step.

    Started at once and read when first needed, so it trains while the SLURM jobs start up.
    """
    run = tmp_path_factory.mktemp("reference") / "run"
    proc = train_process([f"hydra.run.dir={run}", *PREEMPT_RUN])
    losses: dict[int, str] = {}

    def read() -> dict[int, str]:
        if not losses:
            finish(proc)
            losses.update(step_losses(run))
        return losses

    yield read
    proc.kill()


def test_slurm_sweep_records_a_failed_job_and_requeues_a_preempted_one(tmp_path, reference_losses):
    """`-m hydra/launcher=slurm lr=-1,0.001`: the lr=-1 job fails; the other gets submitit's
    preemption signal (SIGUSR2), checkpoints, is requeued by submitit and resumes exactly."""
    sweep_dir = tmp_path / "sweep"
    args = [*PREEMPT_RUN, "preemption.signal=SIGUSR2"]  # the signal submitit asks SLURM for
    sweep = train_process(
        ["-m", "hydra/launcher=slurm", "lr=-1,0.001", f"hydra.sweep.dir={sweep_dir}", *args]
    )
    job_id = ""
    try:
        wait_for(lambda: any(sweep_dir.glob("1_*/checkpoints/last.ckpt")), "job 1's first checkpoint")
        job_id = submitit_job_dirs(sweep_dir)[1]  # <array id>_1
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        output = sweep.communicate(timeout=JOB_TIMEOUT_S)[0].decode()
        state = final_state(job_id)  # before the clean-up below could cancel a job still completing
    finally:
        sweep.kill()
        if job_id:
            subprocess.run(["scancel", job_id.split("_")[0]], check=False)  # a no-op once they ended
    assert sweep.returncode != 0  # the sweep's exit code says a job failed ...
    assert "1 of 2 sweep jobs did not complete" in output, output[-3000:]  # ... the lr=-1 one only
    # squeue, not sacct, answers job states here: no warning block per poll
    assert "Bypassing sacct error" not in output and "job states come from squeue" in output
    # the run directories a local sweep names: <job number>_<overrides, made short>; the full
    # overrides are in each metrics.json
    failed_run, preempted_run = sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))
    assert failed_run.name.startswith("0_") and "lr=-1" in read_metrics(failed_run)["overrides"]
    assert preempted_run.name.startswith("1_") and "lr=0.001" in read_metrics(preempted_run)["overrides"]
    failed, metrics = read_metrics(failed_run), read_metrics(preempted_run)
    assert failed["status"] == "failed" and "lr=-1: expected a number > 0" in failed["error"]  # the schema

    assert job_field(job_id, "Restarts") == "1" and state == "COMPLETED"
    assert metrics["status"] == "completed" and 4 <= metrics["resumed_from_step"] < 60
    # submitit's own path, read from the run's train.log (the job writes it itself). Not from the
    # job's stdout file: slurmstepd writes that, and as `scontrol requeue` stops the step it can
    # drop the first attempt's last lines (seen once in CI, on a loaded machine).
    run_log = (preempted_run / "train.log").read_text()
    assert "preemption checkpoint written: submitit requeues SLURM job" in run_log, run_log
    assert "this job is preempted" in run_log and f"Requeued job {job_id}" in run_log, run_log
    assert run_log.count("Job completed successfully") == 1, run_log  # the second attempt only
    job_log = (sweep_dir / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert "tunelab run completed" in job_log, job_log
    losses = step_losses(preempted_run)  # every step once: the resumed run keeps earlier rows
    assert sorted(losses) == list(range(60))
    reference = reference_losses()
    assert [s for s in losses if losses[s] != reference[s]] == []


def sbatch_script(run: Path, log: Path) -> str:
    """The docs/reliability.md preemption example, for this test's run directory."""
    train = [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={run}"]
    command = " ".join([*train, *PREEMPT_RUN, "preemption.signal=SIGUSR1"])
    return "\n".join(
        [
            "#!/bin/bash",
            "#SBATCH --requeue --ntasks=1 --cpus-per-task=1 --mem=4G",
            f"#SBATCH --output={log} --open-mode=append",
            f"srun {command}",
            "",
        ]
    )


def test_sbatch_job_signalled_before_preemption_is_requeued_and_resumes_exactly(tmp_path, reference_losses):
    run, log, script = tmp_path / "run", tmp_path / "slurm.log", tmp_path / "job.sbatch"
    script.write_text(sbatch_script(run, log))
    submitted = subprocess.run(
        ["sbatch", "--parsable", str(script)],
        env=job_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = submitted.stdout.strip().split(";")[0]
    wait_for((run / "checkpoints" / "last.ckpt").exists, "the job's first checkpoint")
    # what SLURM sends `--signal=USR1@N` seconds before a preemption or the time limit
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)

    wait_for(lambda: job_field(job_id, "JobState") in ENDED, f"job {job_id} to end")
    assert final_state(job_id) == "COMPLETED", log.read_text()[-3000:]
    assert job_field(job_id, "Restarts") == "1"  # requeued once, by tunelab's scontrol requeue
    metrics = read_metrics(run)
    assert metrics["status"] == "completed", log.read_text()[-3000:]
    assert 4 <= metrics["resumed_from_step"] < 60  # resume=auto found the preemption checkpoint
    # train.log, which the job writes itself: SLURM may drop the first attempt's last stdout lines
    assert f"preemption checkpoint written: scontrol requeue {job_id}" in (run / "train.log").read_text()
    assert "tunelab run completed" in log.read_text()
    losses = step_losses(run)  # every step once: the resumed run keeps the rows written before
    assert sorted(losses) == list(range(60))
    reference = reference_losses()
    assert [s for s in losses if losses[s] != reference[s]] == []


def test_srun_two_tasks_per_node_ddp_matches_one_process(tmp_path):
    cpus = subprocess.run(["sinfo", "--noheader", "--format=%c"], capture_output=True, text=True).stdout
    if int(cpus.split()[0].rstrip("+")) < 2:
        pytest.skip(f"the SLURM node has {cpus.strip()} CPU: two tasks need 2")
    common = [
        "trainer.accelerator=cpu", "trainer.max_steps=8", "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false", "data.train.size=64", "eval=none", "checkpoint_every=8",
        "strategy=ddp",
    ]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    baseline_run = train_process([*common, "trainer.devices=1", "data.batch_size=8", f"hydra.run.dir={one}"])
    # Lightning refuses a bare --ntasks=2 ("not supported. HINT: Use --ntasks-per-node=2")
    srun = ["srun", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--mem=8G", "--time=4"]
    command = [sys.executable, str(ROOT / "train.py"), *common, "trainer.devices=2", "data.batch_size=4"]
    proc = subprocess.run(
        [*srun, *command, f"hydra.run.dir={two}"],
        env=job_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    finish(baseline_run)
    assert "GLOBAL_RANK: 1" in proc.stderr + proc.stdout  # Lightning joined both srun tasks
    assert read_metrics(two)["status"] == "completed" and len(list(two.rglob("metrics.json"))) == 1
    baseline, ddp = float_losses(one), float_losses(two)
    assert len(baseline) == len(ddp) == 8 and baseline[-1] < baseline[0]
    rel = [abs(a - b) / b for a, b in zip(ddp, baseline, strict=True)]
    assert max(rel) < TOLERANCE, rel


def run_compare(out_dir: Path, *args: str) -> None:
    """`compare.py comparison=smoke` (the tune stage) into `out_dir`; fails the test if it fails."""
    cmd = [
        sys.executable,
        str(ROOT / "compare.py"),
        "comparison=smoke",
        "stages=[tune]",
        f"output_dir={out_dir}",
    ]
    proc = subprocess.run(
        [*cmd, *args], cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_comparison_through_slurm_lands_what_the_local_launcher_lands(tmp_path: Path):
    import json

    run_compare(tmp_path / "slurm", "launcher=slurm")
    run_compare(tmp_path / "local")
    jobs = {
        where: json.loads((tmp_path / where / "tune" / "manifest.json").read_text())
        for where in ("slurm", "local")
    }
    assert [j["run_dir"] for j in jobs["slurm"]] == [j["run_dir"] for j in jobs["local"]]
    assert [j["config_sha256"] for j in jobs["slurm"]] == [j["config_sha256"] for j in jobs["local"]]
    for job in jobs["local"]:
        slurm, local = (read_metrics(tmp_path / where / job["run_dir"]) for where in ("slurm", "local"))
        assert slurm["status"] == local["status"] == "completed"
        assert slurm["train_loss_final"] == local["train_loss_final"]  # bitwise: one thread each
        assert slurm["eval/arithmetic/exact_match"] == local["eval/arithmetic/exact_match"]
    best = [json.loads((tmp_path / where / "tune" / "best.json").read_text()) for where in ("slurm", "local")]
    assert best[0] == best[1]

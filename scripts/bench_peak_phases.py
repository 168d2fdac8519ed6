"""Where a bench arm reaches its peak RSS: a sampler thread reads the process's resident memory
every 10 ms and keeps the maximum per phase of the step (forward, backward, optimizer, ...).

    OMP_NUM_THREADS=1 python scripts/bench_peak_phases.py MODEL_DIR tunelab full [STEPS]  # or: trl full

Builds the arm exactly as `tunelab bench` does (tunelab.workflows.bench), STEPS (default 3) steps of
2 rows of <=256 tokens from the bench's chats; phases are numbered by the optimizer step they
precede. Memory, unlike time, does not depend on the machine's load.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import lightning as L
import torch
import transformers

import tunelab.training.run as run
from tunelab.workflows import bench

PAGE = os.sysconf("SC_PAGE_SIZE")
state: dict = {"phase": "build", "by_phase": {}, "step": 0}


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def sample() -> None:
    while True:
        phase, now = state["phase"], rss_mib()
        state["by_phase"][phase] = max(state["by_phase"].get(phase, 0.0), now)
        time.sleep(0.01)


def phase(name: str):
    def hook(*args, **kwargs) -> None:
        if name == "after step":
            state["step"] += 1
        state["phase"] = f"{state['step']}:{name}"

    return hook


class LightningPhases(L.Callback):
    on_train_batch_start = phase("forward")
    on_before_backward = phase("backward")
    on_before_optimizer_step = phase("optimizer")
    on_train_batch_end = phase("after step")
    on_save_checkpoint = phase("checkpoint")
    on_train_end = phase("train end")


class TrainerPhases(transformers.TrainerCallback):
    on_step_begin = phase("forward+backward")
    on_pre_optimizer_step = phase("optimizer")
    on_step_end = phase("after step")


def main(model: str, runner: str, adapter: str, steps: str = "3") -> None:
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        measure(model, runner, adapter, int(steps), Path(tmp))


def measure(model: str, runner: str, adapter: str, steps: int, tmp: Path) -> None:
    torch.set_num_threads(1)
    args = bench.BenchArguments(model=model, steps=steps, batch_size=2, max_length=256, examples=40)
    arm = bench.Arm(runner, adapter)
    data = tmp / "data"
    data.mkdir()
    bench.write_chats(data / "chats.jsonl", args.examples, bench.SEED)
    args.data = str(data)
    out = tmp / "run"
    cfg = bench.compose_config(args, arm, out)
    build_trainer = run.build_trainer
    run.build_trainer = lambda c, o, extra_callbacks=None: build_trainer(
        c, o, extra_callbacks=[*(extra_callbacks or []), LightningPhases()]
    )
    trainer_init = transformers.Trainer.__init__

    def init(self, *a, **kw) -> None:
        trainer_init(self, *a, **kw)
        self.add_callback(TrainerPhases())

    transformers.Trainer.__init__ = init
    threading.Thread(target=sample, daemon=True).start()
    result = bench.RUNNERS[runner](args, cfg, out)
    time.sleep(0.05)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    phases = ", ".join(f"{k} {v:.0f}" for k, v in state["by_phase"].items())
    print(f"{runner} {adapter}: peak RSS {peak:.0f} MiB; max RSS per phase (MiB): {phases}")
    print(f"losses: {result['losses']}")


if __name__ == "__main__":
    main(*sys.argv[1:5])

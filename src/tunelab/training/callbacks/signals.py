"""Signals from the moment a run starts: SIGTERM stops it as failed with a non-zero exit, and the
preemption signal is caught during start-up too (not only once training runs).

Lightning turns SIGTERM into `SIGTERMException`, a `SystemExit` with code 0: the process exited 0
while metrics.json said "failed", and a sweep stopped without a word. Installed first thing in
`train()`, `Terminated` (exit 143 = 128 + SIGTERM, as a shell reports it) stops the run wherever it
is; Lightning, installing its own handler later, calls this one after its own.
"""

from __future__ import annotations

import signal
from types import FrameType

SIGTERM_EXIT = 128 + signal.SIGTERM


class Terminated(SystemExit):
    """The run received SIGTERM; metrics.json records it as failed and the process exits 143."""

    def __init__(self) -> None:
        super().__init__(SIGTERM_EXIT)

    def __str__(self) -> str:
        return "the run received SIGTERM and stopped"


# Preemption signals received before PreemptionCheckpoint exists (model loading, evaluation).
early_requests: set[int] = set()
# The handlers that were installed before tunelab's (submitit's, under hydra/launcher=slurm): the
# preemption path hands the signal back to them once the checkpoint is written.
original_handlers: dict[int, object] = {}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _remember(signum: int, frame: FrameType | None) -> None:
    early_requests.add(signum)


def install_startup_handlers(preemption_signal: str | None) -> None:
    """SIGTERM -> `Terminated`; the preemption signal (if any) remembered until training asks."""
    early_requests.clear()
    signal.signal(signal.SIGTERM, _terminate)
    if preemption_signal:
        signum = signal.Signals[preemption_signal]
        previous = signal.signal(signum, _remember)
        if previous is not _remember:  # a second run in one process keeps the first original
            original_handlers[signum] = previous


def original_handler(signum: int) -> object:
    """The handler `signum` had before tunelab's start-up handler (else the current one)."""
    return original_handlers.get(signum, signal.getsignal(signum))

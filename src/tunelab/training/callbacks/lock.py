"""One process per run directory: a second run on the same directory is refused, not interleaved.

An advisory `flock` on `<run dir>/.lock`, held for the whole run. The kernel drops it when the
process ends however it ends (SIGKILL included), so a crashed run never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tunelab.core.config import ConfigError

LOCK_FILE = ".lock"


class RunLock:
    """Holds the run directory's lock from `acquire()` until `release()` or process exit."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock; ConfigError naming the holder's pid when another process has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{self.path.parent}: another tunelab process (pid {holder}) is running in this run "
                "directory; wait for it to finish or choose another hydra.run.dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays: removing it could race with a process about to lock it)."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

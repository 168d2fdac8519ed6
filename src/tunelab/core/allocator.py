"""Host memory, opt-in: large freed tensors go back to the operating system at once.

glibc serves an allocation above its mmap threshold (128 KiB at start) from its own mapping, which
`free` returns at once. But each such free *raises* the threshold to that size (up to 32 MiB), so a
training step's later activations and gradients of a few MiB come from the heap instead, where
freed blocks stay resident and fragment: the process's peak RSS then depends on the order of
allocations, not only on what is alive. Fixing the threshold turns the dynamic raise off. On
full fine-tuning of SmolLM2-135M (CPU) it lowered the peak RSS from ~3,330 to 2,920 MiB, repeatable
to a few MiB, but every step's fresh mappings are page-faulted in again: 22-32% fewer tokens per
CPU-second (docs/performance.md, "Full-SFT peak memory"). So it is off unless asked for:
TUNELAB_MMAP_THRESHOLD=131072 (bytes) when memory, not speed, is what limits a run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from tunelab.core.config import ConfigError

ENV = "TUNELAB_MMAP_THRESHOLD"
SUGGESTED_BYTES = 128 * 1024  # glibc's own starting value, kept instead of raised
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def threshold_from_env(environ: dict[str, str] | None = None) -> int | None:
    """The threshold in bytes from TUNELAB_MMAP_THRESHOLD; None (glibc's dynamic one) when unset or `off`."""
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    if raw.lower() in ("", "off", "0", "false"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise ConfigError(f"{ENV}={raw!r}: expected a positive number of bytes, or off")
    return value


def fix_mmap_threshold(threshold: int | None) -> bool:
    """Set glibc's mmap threshold (process-wide, no dynamic raise); False where there is no glibc."""
    if threshold is None or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):  # musl and others: leave alone
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))


def release_large_frees() -> bool:
    """`fix_mmap_threshold` with the threshold TUNELAB_MMAP_THRESHOLD names (unset: leave glibc alone)."""
    return fix_mmap_threshold(threshold_from_env())

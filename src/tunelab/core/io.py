"""File writes that a crash cannot leave half done, and that a full disk cannot leave stale."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary name, then rename: a crash never leaves a half-written file.

    When the disk is full the temporary file is removed and, if `path` exists, the record is
    written into the blocks `path` already holds (see `overwrite_in_place`): a run that fails
    because the disk filled up is still marked failed, not left "running".
    """
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        if not path.is_file() or not overwrite_in_place(path, data):
            raise


def overwrite_in_place(path: Path, data: dict) -> bool:
    """Rewrite `path` inside its current size, without allocating blocks: `data` as JSON, or as
    much of it as fits (the status and error first, the rest dropped), padded with spaces that
    JSON ignores. False if not even the status fits."""
    size = path.stat().st_size
    core = {k: data[k] for k in ("status", "error", "name", "seed") if k in data}
    for candidate in (data, core, {"status": data.get("status")}):
        text = json.dumps(candidate, sort_keys=True, default=str).encode()
        if len(text) < size:
            with path.open("r+b") as fh:  # no truncation first: the blocks stay allocated
                fh.write(text + b" " * (size - len(text) - 1) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            return True
    return False


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` (or what caused it) is "no space left on device" or a quota."""
    import errno

    seen: set[int] = set()
    while err is not None and id(err) not in seen:  # a context chain can loop back on itself
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        err = err.__cause__ or err.__context__
    return False


def remove_partial_files(out_dir: Path) -> list[str]:
    """After a disk-full failure: delete the `.tmp` files and the 0-byte files the failed writes left
    under `out_dir` (a half-saved adapter must not look like one); returns them, relative to it."""
    removed = []
    for path in sorted(out_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and (path.suffix == ".tmp" or path.stat().st_size == 0):
            path.unlink(missing_ok=True)
            removed.append(str(path.relative_to(out_dir)))
    return removed

"""Checkpoint integrity: a sha256 beside every checkpoint, the previous good one kept, and a resume
that verifies before it loads and falls back to the previous checkpoint when the newest is damaged.

`<name>.sha256` holds the digest of `<name>`, computed while the bytes are written; before a new
`<name>` replaces the old one, the old pair is renamed to `<name>.prev` / `<name>.prev.sha256`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import BinaryIO

from tunelab.core.config import ConfigError

CHUNK = 1 << 20


class HashingWriter:
    """A file object that hashes what passes through it (torch.save writes through it)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def sidecar(path: Path) -> Path:
    """The digest file of checkpoint `path`."""
    return path.with_name(path.name + ".sha256")


def previous(path: Path) -> Path:
    """Where the checkpoint that `path` replaced is kept."""
    return path.with_name(path.name + ".prev")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def commit(tmp: Path, path: Path, sha256: str) -> None:
    """Move the finished `tmp` to `path` with its digest; the replaced checkpoint becomes `.prev`."""
    if path.is_file():
        os.replace(path, previous(path))
        if sidecar(path).is_file():
            os.replace(sidecar(path), sidecar(previous(path)))
        else:
            sidecar(previous(path)).unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)  # never a digest of another file's bytes
    os.replace(tmp, path)
    write_text_atomic(sidecar(path), f"{sha256}  {path.name}\n")


def remove(path: Path) -> None:
    """Delete a checkpoint with its digest and its kept predecessor."""
    for p in (path, sidecar(path), previous(path), sidecar(previous(path))):
        p.unlink(missing_ok=True)


def intact(path: Path) -> bool | None:
    """True: the digest matches; False: it does not (damaged); None: no digest to check."""
    if not path.is_file():
        return False
    if not sidecar(path).is_file():
        return None
    expected = sidecar(path).read_text().split()[:1]
    return bool(expected) and expected[0] == file_sha256(path)


def verified(path: str | None) -> str | None:
    """The checkpoint to resume from: `path` if intact (or from before digests), else its kept
    predecessor with a warning on stderr; ConfigError when neither is intact."""
    if path is None:
        return None
    ckpt = Path(path)
    if intact(ckpt) is not False:
        return path
    fallback = previous(ckpt)
    if intact(fallback) is True:
        print(f"tunelab: warning: {ckpt} fails its sha256 check; resuming from {fallback}", file=sys.stderr)
        return str(fallback)
    raise ConfigError(
        f"resume: {ckpt} fails its sha256 check ({sidecar(ckpt).name}) and no intact previous "
        f"checkpoint ({fallback.name}) exists; start afresh with resume=false or pass another checkpoint"
    )

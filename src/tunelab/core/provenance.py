"""What produced a run: code (git commit, dirty tree), packages, hardware, config and data hashes.

Every run's metrics.json carries this under `provenance`, so a table can say which commits and
package sets its rows came from, and the comparison cache can recognise a job it already ran.
Nothing heavy is imported at module import: versions come from package metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PACKAGES = ("torch", "transformers", "peft", "lightning", "bitsandbytes", "trl")

# Top-level keys that do not change what a run trains or measures: left out of the config hash,
# so that renaming an experiment or switching loggers still finds the cached run.
NOT_HASHED = ("name", "logger", "resume", "resume_force", "preemption", "faults", "output_dir", "hydra")


def git_state(root: Path) -> dict[str, Any]:
    """`{"commit": sha or None, "dirty": bool or None}` of the git checkout holding `root`."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    # Untracked files count: a new module beside the committed ones changes what runs.
    status = git("status", "--porcelain", "--untracked-files=normal")
    return {"commit": commit.strip(), "dirty": bool(status and status.strip())}


def package_versions() -> dict[str, str | None]:
    """Python and the training stack's versions; None for a package that is not installed."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform reports."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """CPU model, usable cores, torch's intra-op threads and the visible GPUs."""
    import torch  # a run has imported it already; provenance itself stays light

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_cores": cores,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpus[0] if gpus else None,
        "gpu_count": len(gpus),
    }


def config_sha256(cfg: DictConfig | dict) -> str:
    """sha256 of the resolved config without bookkeeping keys (`NOT_HASHED`)."""
    if isinstance(cfg, DictConfig):  # each kept node resolves against the whole config
        container = {k: _resolved(cfg, k) for k in cfg if k not in NOT_HASHED}
    else:
        container = {k: v for k, v in cfg.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _string_leaves(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _string_leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _string_leaves(value)]
    return [node] if isinstance(node, str) and node else []


def named_files(cfg: DictConfig) -> dict[str, str]:
    """`{path: sha256}` of every existing file the resolved config names (data, templates, tests).

    The config hash sees a data file's path only; this sees its contents, so an edited data file
    under an unchanged path is a different run to the comparison cache.
    """
    container = {k: _resolved(cfg, k) for k in cfg if k not in NOT_HASHED}
    files = {}
    for leaf in sorted(set(_string_leaves(container))):
        if len(leaf) < 4096 and "\n" not in leaf and Path(leaf).is_file():
            files[leaf] = file_sha256(Path(leaf))
    return files


def cache_key(config_digest: str, files: dict[str, str]) -> str:
    """The comparison cache's identity of a run: its config hash and the contents of its files."""
    return hashlib.sha256(json.dumps([config_digest, files], sort_keys=True).encode()).hexdigest()


def _resolved(cfg: DictConfig, key: str) -> Any:
    node = cfg._get_node(key)
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return cfg[key]


def run_provenance(cfg: DictConfig, root: Path | None = None) -> dict[str, Any]:
    """`{"provenance": {...}}` for metrics.json; the data hash is added once the data is built."""
    from tunelab.core.config import project_root

    record: dict[str, Any] = {"git": git_state(root or project_root()), "packages": package_versions()}
    collectors = (
        ("hardware", hardware),
        ("config_sha256", lambda: config_sha256(cfg)),
        ("named_files", lambda: named_files(cfg)),
    )
    for key, collect in collectors:
        try:  # a record that cannot be made is written as such; it never stops the run
            record[key] = collect()
        except Exception as err:
            record[key] = f"unavailable: {type(err).__name__}: {err}"
    return {"provenance": record}

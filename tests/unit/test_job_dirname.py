"""Sweep job directory names stay one short, safe path component whatever the overrides."""

from __future__ import annotations

import hashlib

from tunelab.core.config import job_dirname


def test_short_plain_overrides_are_kept_verbatim():
    assert job_dirname(2, "lr=0.002,seed=1") == "2_lr=0.002,seed=1"
    assert job_dirname(0, "") == "0"


def test_paths_and_long_sweeps_become_one_short_component_with_a_hash():
    overrides = ",".join(f"data.train.path=/very/long/dir{i}/file.jsonl" for i in range(20))  # ~800 chars
    name = job_dirname(5, overrides)
    assert "/" not in name and len(name) <= 62
    assert name.endswith(hashlib.sha1(overrides.encode()).hexdigest()[:8])
    assert name.startswith("5_data.train.path=-very-long-dir0-file.jsonl")
    # Overrides that differ only past the cut still get different names.
    assert job_dirname(5, overrides + ",seed=1") != name

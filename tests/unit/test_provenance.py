"""Provenance: every field a run records, and the dirty flag read from a real git tree."""

import hashlib
import json
import subprocess
import sys
from importlib import metadata

import pytest
from omegaconf import OmegaConf

from tunelab.core.provenance import config_sha256, git_state, package_versions, run_provenance


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_tree_names_its_commit(repo):
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert git_state(repo) == {"commit": head.stdout.strip(), "dirty": False}


def test_modified_file_makes_the_tree_dirty(repo):
    (repo / "a.txt").write_text("two\n")
    assert git_state(repo)["dirty"] is True


def test_untracked_file_makes_the_tree_dirty(repo):
    (repo / "new.py").write_text("x = 1\n")
    assert git_state(repo)["dirty"] is True


def test_outside_git_says_unknown(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


def test_versions_match_package_metadata():
    versions = package_versions()
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["torch"] == metadata.version("torch")
    assert versions["peft"] == metadata.version("peft")
    assert set(versions) == {"python", "torch", "transformers", "peft", "lightning", "bitsandbytes", "trl"}


def test_config_hash_is_sha256_of_the_resolved_config_without_bookkeeping():
    cfg = OmegaConf.create({"lr": "${adapter.lr}", "adapter": {"lr": 0.1}, "name": "x", "logger": {"a": 1}})
    expected = hashlib.sha256(json.dumps({"adapter": {"lr": 0.1}, "lr": 0.1}, sort_keys=True).encode())
    assert config_sha256(cfg) == expected.hexdigest()
    renamed = OmegaConf.merge(cfg, {"name": "y", "logger": {"b": 2}})
    assert config_sha256(renamed) == config_sha256(cfg)
    assert config_sha256(OmegaConf.merge(cfg, {"adapter": {"lr": 0.2}})) != config_sha256(cfg)


def test_run_provenance_has_every_field(repo):
    record = run_provenance(OmegaConf.create({"seed": 1}), root=repo)["provenance"]
    assert set(record) == {"git", "packages", "hardware", "config_sha256", "named_files"}
    assert set(record["hardware"]) == {"cpu", "cpu_cores", "torch_threads", "gpu", "gpu_count"}
    assert record["hardware"]["cpu_cores"] >= 1 and record["git"]["dirty"] is False


def test_unresolvable_config_is_recorded_not_raised(repo):
    cfg = OmegaConf.create({"x": "${missing_key}"})
    record = run_provenance(cfg, root=repo)["provenance"]
    assert record["config_sha256"].startswith("unavailable: ")

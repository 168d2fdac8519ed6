"""glibc's mmap threshold, fixed: freed multi-MiB tensors leave the process's resident memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tunelab.core.allocator import ENV, SUGGESTED_BYTES, fix_mmap_threshold, threshold_from_env
from tunelab.core.config import ConfigError

# One 8 MiB tensor is mmapped and freed (glibc then raises its threshold past 8 MiB); forty more are
# allocated, touched and freed except the last, which pins the heap top so nothing is trimmed.
# Resident growth in MiB is printed: ~320 when the forty came from the heap, ~8 when mmapped.
CHURN = """
import os, sys, torch
from tunelab.core.allocator import SUGGESTED_BYTES, fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold(SUGGESTED_BYTES)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
n = 2 * 2**20  # float32 elements: 8 MiB
first = torch.ones(n); del first
start = rss()
kept = [torch.ones(n) for _ in range(40)]
last = kept.pop()
del kept
print(rss() - start)
"""


def resident_growth(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_fixed_threshold_returns_freed_tensors_that_the_dynamic_one_keeps():
    assert resident_growth("dynamic") > 39 * 8 * 0.9  # 39 freed tensors still resident
    assert resident_growth("fixed") < 4 * 8  # only the live one (and small change)


def test_the_threshold_comes_from_the_environment_or_a_config_error():
    assert threshold_from_env({}) is None and threshold_from_env({ENV: "off"}) is None  # glibc's own
    assert threshold_from_env({ENV: "0"}) is None and not fix_mmap_threshold(None)
    assert threshold_from_env({ENV: str(SUGGESTED_BYTES)}) == 128 * 1024
    assert threshold_from_env({ENV: "1048576"}) == 2**20
    with pytest.raises(ConfigError, match=r"^TUNELAB_MMAP_THRESHOLD=.1MB.: expected a positive number"):
        threshold_from_env({ENV: "1MB"})

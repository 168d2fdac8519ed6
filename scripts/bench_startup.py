"""Start-up time of a config error and of --help against `python -c "import torch"`, interleaved.

    python scripts/bench_startup.py [repeats]

Prints the median wall seconds of each command and its ratio to the torch import (the goal in
docs/architecture.md: a typo or --help answers within 1.5x of importing torch).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "train.py adapter=lorra": [sys.executable, str(ROOT / "train.py"), "adapter=lorra"],
    "train.py --help": [sys.executable, str(ROOT / "train.py"), "--help"],
}


def wall_seconds(cmd: list[str]) -> float:
    """One run's wall time (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=False)
    return time.perf_counter() - start


def main(repeats: int = 5) -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):  # interleaved, so machine load hits every command alike
        for name, cmd in COMMANDS.items():
            times[name].append(wall_seconds(cmd))
    reference = statistics.median(times["import torch"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:26s} median {median:6.2f} s  ratio to torch import {median / reference:5.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

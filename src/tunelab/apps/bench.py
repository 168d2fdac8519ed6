"""`tunelab bench model=DIR [pairs=[lora,full,plain_lora,head]] [repeats=3] [steps=15] ...`.

Trains one job several ways on any local HF causal LM, interleaved over repeats, side by side with
TRL and a plain loop, and prints tokens/s and memory ratios (docs/performance.md).
"""

from __future__ import annotations

from tunelab.apps.arguments import parse_arguments


def main(argv: list[str]) -> int:
    """Parse `key=value` arguments and run the bench."""
    from tunelab.workflows.bench import BenchArguments
    from tunelab.workflows.bench import main as run_bench

    return run_bench(parse_arguments("bench", BenchArguments, argv[1:]))

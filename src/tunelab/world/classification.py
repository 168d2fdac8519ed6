"""Labelled tiny-world classification data: "is this sum correct?" from the arithmetic task."""

from __future__ import annotations

import random

from tunelab.world import tasks
from tunelab.world.records import wrong_sum

SUM_CHECK_LABELS = ("wrong", "correct")  # label ids 0 and 1


def sum_check_records(split: str, size: int | None = None, seed: int = 0) -> list[dict]:
    """`{text: "12+34=46", label: 1}` records in the raw form the base was pretrained on; half
    the items (alternating) carry a near-miss wrong sum (label 0), so the classes are balanced."""
    rng = random.Random(seed)
    records = []
    for i, ex in enumerate(tasks.sample("arithmetic", split, size, seed)):
        correct = i % 2 == 0
        a, b = (int(x) for x in ex.raw_prompt.rstrip("=").split("+"))
        answer = ex.answer if correct else wrong_sum(a, b, rng)
        records.append({"text": f"{ex.raw_prompt}{answer}", "label": int(correct)})
    return records

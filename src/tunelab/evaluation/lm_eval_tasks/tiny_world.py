"""Datasets of the shipped tiny-world lm-eval tasks, built offline from the tiny world's splits.

lm-eval's YAMLs name these functions as `custom_dataset: !function tiny_world.<name>`: the
held-out split is the task's `test` split, a slice of the train split serves few-shot examples.
Nothing is downloaded.
"""

from __future__ import annotations

import random
from typing import Any

from datasets import Dataset, DatasetDict

from tunelab.world import tasks
from tunelab.world.records import wrong_sum

FEWSHOT_POOL = 200  # train items lm-eval may draw few-shot examples from
N_CHOICES = 4


def _rows(task: str, split: str, n: int | None) -> list[dict[str, str]]:
    items = tasks.load_split(task, split)[:n]
    return [
        {"prompt": ex.prompt, "raw_prompt": ex.raw_prompt, "answer": ex.answer, "completion": ex.completion}
        for ex in items
    ]


def _dataset(task: str) -> DatasetDict:
    return DatasetDict(
        {
            "train": Dataset.from_list(_rows(task, "train", FEWSHOT_POOL)),
            "test": Dataset.from_list(_rows(task, "test", None)),
        }
    )


def arithmetic(**_: Any) -> DatasetDict:
    """Two-digit additions: `prompt` ("What is 12+34?"), `completion` ("12+34=46"), `answer`."""
    return _dataset("arithmetic")


def reverse(**_: Any) -> DatasetDict:
    """String reversal, the skill arithmetic fine-tuning does not train (forgetting)."""
    return _dataset("reverse")


def sum_choices(raw_prompt: str, seed: int) -> tuple[list[str], int]:
    """The right sum among N_CHOICES-1 distinct near misses, shuffled by `seed`; returns (choices, gold)."""
    a, b = (int(x) for x in raw_prompt.rstrip("=").split("+"))
    rng = random.Random(seed)
    wrong: list[str] = []
    while len(wrong) < N_CHOICES - 1:  # every sum has at least three near misses
        candidate = wrong_sum(a, b, rng)
        if candidate not in wrong:
            wrong.append(candidate)
    choices = [str(a + b), *wrong]
    rng.shuffle(choices)
    return choices, choices.index(str(a + b))


def _with_choices(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        choices, gold = sum_choices(row["raw_prompt"], seed=i)
        out.append({**row, "choices": choices, "gold": gold})
    return out


def arithmetic_mc(**_: Any) -> DatasetDict:
    """Arithmetic as multiple choice: `choices` (right sum + near misses) and the `gold` index."""
    return DatasetDict(
        {
            "train": Dataset.from_list(_with_choices(_rows("arithmetic", "train", FEWSHOT_POOL))),
            "test": Dataset.from_list(_with_choices(_rows("arithmetic", "test", None))),
        }
    )

"""A held-out test split of the user's data file: the same records for training and evaluation.

Training and the default evaluation read the same file independently (data before the model
loads, the eval task for its prompts); both call `read_split`, which draws the held-out records
by a seeded permutation of the file's record indices, so the two sides agree without sharing
state, and no held-out record is trained on. A separate test file (`data.test_path`) replaces the
split: the training file is then used whole.
"""

from __future__ import annotations

import random

from tunelab.core.config import ConfigError
from tunelab.data.sources import read_records

PARTS = ("train", "test")


class SplitRecords(list):
    """Records of one part of a split, with each record's 0-based position in its file
    (`positions`) and, where the reader knew it, its place (`places`: `file:line`, 1-based), so
    that an error names the record as the file numbers it (tunelab.data.sources.place)."""

    def __init__(self, records: list[dict], positions: list[int], places: list[str] | None = None) -> None:
        super().__init__(records)
        self.positions = positions
        if places is not None:
            self.places = places


def held_out_count(test_size: float, n: int) -> int:
    """Records held out of `n`: `test_size` itself when >= 1, else that fraction (at least one)."""
    if test_size < 0:
        raise ConfigError(f"data.test_size={test_size}: expected a count (>= 1), a fraction (0..1) or 0")
    count = int(test_size) if test_size >= 1 else max(1, round(test_size * n)) if test_size > 0 else 0
    if count >= n and count > 0:
        raise ConfigError(f"data.test_size={test_size}: holds out {count} of only {n} records")
    return count


def split_indices(n: int, test_size: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, test indices) of `n` records, each ascending; the test draw is seeded."""
    count = held_out_count(test_size, n)
    test = set(random.Random(seed).sample(range(n), count))
    return [i for i in range(n) if i not in test], sorted(test)


def read_split(
    path: str,
    part: str = "train",
    test_path: str | None = None,
    test_size: float = 0,
    seed: int = 0,
    split: str = "train",
    limit: int | None = None,
) -> SplitRecords:
    """The `part` ("train" or "test") of the records of `path` (see the module docstring).

    With `test_path`, "test" is that file's records; without it and with `test_size` 0, "test"
    is empty. `limit` caps the training part (after the split, so the held-out set is unchanged).
    """
    if part not in PARTS:
        raise ConfigError(f"read_split part={part!r}: expected one of {list(PARTS)}")
    if test_path is not None:
        records = read_records(test_path, "test") if part == "test" else read_records(path, split)
        positions = list(range(len(records)))
    else:
        records = read_records(path, split)
        train, test = split_indices(len(records), test_size, seed)
        positions = train if part == "train" else test
    places = getattr(records, "places", None)
    places = [places[i] for i in positions] if places is not None else None
    records = [records[i] for i in positions]
    if part == "train" and limit is not None:
        records, positions = records[:limit], positions[:limit]
        places = places[:limit] if places is not None else None
    return SplitRecords(records, positions, places)

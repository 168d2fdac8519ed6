"""LIMA-style data selection: a few good examples beat many mediocre ones (Zhou et al., 2023).

Filters run in order on the validated records before the model loads; each one returns the records
it keeps, and the data module reports how many each removed (`data/removed/<name>` in metrics.json).
A filter sees a record through `View`: the prompt text (every non-assistant turn) and the response
text (every assistant turn), so the same filters work for chats and plain text.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from tunelab.core.config import ConfigError


@dataclass(frozen=True)
class View:
    """What a filter reads of a record."""

    prompt: str
    response: str

    def text(self, part: str) -> str:
        """`prompt`, `response`, or `full` (both, joined by a newline)."""
        return f"{self.prompt}\n{self.response}" if part == "full" else getattr(self, part)


Score = Callable[[View], float]
PARTS = ("prompt", "response", "full")


def _check_part(part: str, key: str) -> str:
    if part not in PARTS:
        raise ConfigError(f"{key}={part!r}: expected one of {PARTS}")
    return part


def resolve_score(name: str) -> Score:
    """The quality-score hook `module:function`, a callable View -> float; ConfigError if missing."""
    module_name, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"data.selection score={name!r}: expected 'module:function' ({err})") from None
    if not callable(fn):
        raise ConfigError(f"data.selection score={name!r}: {attr} is not callable")
    return fn


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace runs collapsed: near-identical texts collide."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class Dedup:
    """Drop records whose text (`part`) repeats an earlier one's, exactly or after `normalize`."""

    def __init__(self, part: str = "full", normalized: bool = False) -> None:
        self.part = _check_part(part, "dedup.part")
        self.normalized = normalized

    def __call__(self, records: list[dict], views: list[View]) -> list[int]:
        seen: set[str] = set()
        keep = []
        for i, view in enumerate(views):
            key = view.text(self.part)
            key = normalize(key) if self.normalized else key
            if key not in seen:
                seen.add(key)
                keep.append(i)
        return keep


class LengthFilter:
    """Keep records whose text (`part`) has between `min_chars` and `max_chars` characters."""

    def __init__(self, part: str = "response", min_chars: int = 0, max_chars: int | None = None) -> None:
        self.part = _check_part(part, "length.part")
        if max_chars is not None and max_chars < min_chars:
            raise ConfigError(f"length filter: max_chars={max_chars} < min_chars={min_chars}")
        self.min_chars, self.max_chars = min_chars, max_chars

    def __call__(self, records: list[dict], views: list[View]) -> list[int]:
        top = self.max_chars if self.max_chars is not None else float("inf")
        return [i for i, v in enumerate(views) if self.min_chars <= len(v.text(self.part)) <= top]


class ScoreFilter:
    """The quality-score hook: keep records whose `score` (a `module:function`) is >= `min_score`."""

    def __init__(self, score: str, min_score: float) -> None:
        self.score = resolve_score(score)
        self.min_score = min_score

    def __call__(self, records: list[dict], views: list[View]) -> list[int]:
        return [i for i, v in enumerate(views) if self.score(v) >= self.min_score]


class KeepBest:
    """Keep the `n` best records by `score` (ties: the earlier record), in their original order."""

    def __init__(self, n: int, score: str) -> None:
        if n < 1:
            raise ConfigError(f"keep_best.n={n}: expected a positive number of records")
        self.n = n
        self.score = resolve_score(score)

    def __call__(self, records: list[dict], views: list[View]) -> list[int]:
        scores = [self.score(v) for v in views]
        best = sorted(range(len(views)), key=lambda i: (-scores[i], i))[: self.n]
        return sorted(best)


Filter = Callable[[list[dict], list[View]], list[int]]


def response_length(view: View) -> float:
    """A simple quality score: the response's length in words (LIMA favoured long, careful answers)."""
    return float(len(view.response.split()))


def select(
    records: list[dict], views: list[View], filters: dict[str, Filter]
) -> tuple[list[dict], dict[str, int]]:
    """Run `filters` in order; the kept records and how many records each filter removed."""
    removed = {}
    for name, keep_fn in filters.items():
        keep = keep_fn(records, views)
        removed[name] = len(records) - len(keep)
        records = [records[i] for i in keep]
        views = [views[i] for i in keep]
    return records, removed

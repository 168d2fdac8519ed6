"""How a part of a run contributes to metrics.json: a `report()` method, merged by the run.

The module, the data module and any callback may define `report() -> dict`; run.py merges what they
return and never reads their attributes. A part with nothing to say returns {} or has no `report`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Reports(Protocol):
    """A part of a run with its own entries for metrics.json."""

    def report(self) -> dict[str, Any]: ...


def merged_reports(parts: Iterable[object]) -> dict[str, Any]:
    """Every part's `report()`, merged in order (a later part's key wins)."""
    merged: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, Reports):
            merged |= part.report()
    return merged

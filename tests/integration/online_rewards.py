"""A user reward function for the online end-to-end test, named in config as module:function."""

from __future__ import annotations


def digit_share(prompts: list[str], completions: list[str], answers: list[str]) -> list[float]:
    """The share of a completion's characters that are digits: a signal the tiny base can climb."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]

"""The tiny world's task generators and their fixed splits."""

from __future__ import annotations

import re

from tunelab.world import tasks
from tunelab.world.records import corpus_records


def test_arithmetic_answers_are_the_sums():
    for ex in tasks.load_split("arithmetic", "test"):
        a, b = map(int, re.fullmatch(r"What is (\d+)\+(\d+)\?", ex.prompt).groups())
        assert ex.answer == str(a + b)
        assert ex.raw_text == f"{a}+{b}={a + b}"


def test_reverse_answers_are_reversed_words():
    for ex in tasks.load_split("reverse", "train")[:500]:
        word = ex.prompt.removeprefix("Reverse ")
        assert ex.answer == "".join(reversed(word))
        assert 3 <= len(word) <= 5


def test_splits_are_fixed_disjoint_and_complete():
    for name in tasks.task_names():
        train, test = tasks.load_split(name, "train"), tasks.load_split(name, "test")
        if name in tasks.UNIVERSES:  # shuffled universes; facts sizes its splits by its facts
            assert len(test) == tasks.TEST_SIZE
        assert not {e.prompt for e in train} & {e.prompt for e in test}
        assert tasks.load_split(name, "test") == test  # same items, same order, every call
    assert len(tasks.load_split("arithmetic", "train")) == 100 * 100 - tasks.TEST_SIZE


def test_sample_is_seeded():
    a = tasks.sample("arithmetic", "train", 50, seed=3)
    assert a == tasks.sample("arithmetic", "train", 50, seed=3)
    assert a != tasks.sample("arithmetic", "train", 50, seed=4)
    assert len(set(a)) == 50


def test_corpus_never_contains_test_items_or_arithmetic_chats():
    text = "".join(r["text"] for r in corpus_records(300, seed=0))
    for ex in tasks.load_split("arithmetic", "test"):
        assert f"\n{ex.raw_prompt}" not in text and not text.startswith(ex.raw_prompt)
    assert "What is" not in text  # arithmetic only ever appears raw
    assert "<|user|>Reverse " in text

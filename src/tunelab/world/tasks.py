"""Synthetic tasks with verifiable answers: the tiny world's skills.

Every task yields `Example(prompt, answer)` pairs. Splits are fixed by seed: the test items are
drawn first from a seeded generator and never appear in train (nor in the pretraining corpus).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from tunelab.world import facts as fact_world

SPLIT_SEED = 1234
TEST_SIZE = 400
# Validation is carved from train (its first items), never from test: tuning reads "validation"
# and trains on "fit" (train minus validation); "train" stays all non-test items, as before.
VALIDATION_SIZE = 400
SPLITS = ("train", "fit", "validation", "test")


@dataclass(frozen=True)
class Example:
    """One task item: a user prompt in words, its raw-text form and the verifiable answer.

    `completion` is what the assistant says: the bare answer, or for tasks with `show_work` the
    worked form ("12+34=46"), which lets a fine-tuned model reuse the skill the base learned on
    raw text instead of learning it again.
    """

    prompt: str
    answer: str
    raw_prompt: str
    show_work: bool = False

    @property
    def completion(self) -> str:
        return self.raw_text if self.show_work else self.answer

    def messages(self) -> list[dict[str, str]]:
        """The item as a two-turn chat."""
        return [
            {"role": "user", "content": self.prompt},
            {"role": "assistant", "content": self.completion},
        ]

    @property
    def raw_text(self) -> str:
        """The item in the plain-text form the base model was pretrained on."""
        return f"{self.raw_prompt}{self.answer}"


def _arithmetic_item(a: int, b: int) -> Example:
    return Example(prompt=f"What is {a}+{b}?", answer=str(a + b), raw_prompt=f"{a}+{b}=", show_work=True)


def _reverse_item(word: str) -> Example:
    return Example(prompt=f"Reverse {word}", answer=word[::-1], raw_prompt=f"reverse {word}:")


def _repeat_item(text: str) -> Example:
    return Example(prompt=f"Repeat {text}", answer=text, raw_prompt=f"repeat {text}:")


def _arithmetic_universe() -> list[Example]:
    return [_arithmetic_item(a, b) for a in range(100) for b in range(100)]


def _reverse_universe() -> list[Example]:
    rng = random.Random(SPLIT_SEED)
    words: set[str] = set()
    while len(words) < 12000:
        n = rng.randint(3, 5)
        words.add("".join(rng.choice(string.ascii_lowercase) for _ in range(n)))
    return [_reverse_item(w) for w in sorted(words)]


def _repeat_universe() -> list[Example]:
    rng = random.Random(SPLIT_SEED + 1)
    alphabet = string.ascii_lowercase + string.digits + "+"
    texts: set[str] = set()
    while len(texts) < 12000:
        texts.add("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 7))))
    return [_repeat_item(t) for t in sorted(texts)]


UNIVERSES: dict[str, Callable[[], list[Example]]] = {
    "arithmetic": _arithmetic_universe,
    "reverse": _reverse_universe,
    "repeat": _repeat_universe,
}


def _shuffled_splits(universe: Callable[[], list[Example]]) -> dict[str, list[Example]]:
    """A universe's items shuffled by SPLIT_SEED: test first, the rest train (validation + fit)."""
    items = universe()
    random.Random(SPLIT_SEED).shuffle(items)
    test, train = items[:TEST_SIZE], items[TEST_SIZE:]
    return {
        "test": test,
        "train": train,
        "validation": train[:VALIDATION_SIZE],
        "fit": train[VALIDATION_SIZE:],
    }


def _fact_item(fact: fact_world.Fact, prompt: str) -> Example:
    return Example(prompt=prompt, answer=fact.value, raw_prompt=f"{fact.entity} {fact.relation}: ")


def _facts_splits() -> dict[str, list[Example]]:
    """Memory tuning's splits: "fit" states every fact in its training phrasings; "validation" and
    "test" ask about the same facts in phrasings training never uses (tunelab.world.facts). Their
    sizes are the facts', not TEST_SIZE / VALIDATION_SIZE."""
    all_facts = fact_world.facts()
    fit = [_fact_item(f, p) for f in all_facts for p in fact_world.train_prompts(f)]
    random.Random(SPLIT_SEED).shuffle(fit)
    validation = [_fact_item(f, q) for f in all_facts for q in fact_world.queries(f, "validation")]
    test = [_fact_item(f, q) for f in all_facts for q in fact_world.queries(f, "test")]
    return {"test": test, "train": validation + fit, "validation": validation, "fit": fit}


# Every task's split builder: shuffled universes, and tasks whose splits have their own shape.
SPLIT_BUILDERS: dict[str, Callable[[], dict[str, list[Example]]]] = {
    **{name: partial(_shuffled_splits, universe) for name, universe in UNIVERSES.items()},
    "facts": _facts_splits,
}


def task_names() -> list[str]:
    """Names of the registered tiny-world tasks."""
    return sorted(SPLIT_BUILDERS)


def load_split(task: str, split: str) -> list[Example]:
    """All items of `task` in `split`, in a fixed order: "test", "train" (every non-test item), and
    train's two parts "validation" (its first VALIDATION_SIZE items) and "fit" (the rest)."""
    if task not in SPLIT_BUILDERS:
        raise KeyError(f"unknown tiny-world task {task!r}; expected one of {task_names()}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for task {task!r}; expected one of {list(SPLITS)}")
    return SPLIT_BUILDERS[task]()[split]


def sample(task: str, split: str, n: int | None, seed: int = 0) -> list[Example]:
    """`n` items of a split (all if `n` is None), sampled without replacement by `seed`."""
    items = load_split(task, split)
    if n is None or n >= len(items):
        return items
    return random.Random(seed).sample(items, n)

"""Synthetic facts for memory tuning: made-up entities, each with a few attributes.

Every fact is (entity, relation, value), drawn from a fixed seed. The model learns the facts from
statement-style chat turns in several phrasings (`TRAIN_TEMPLATES`) and is asked about them in
phrasings it never trained on: one for validation, another for test. So test items are held-out
*queries* about *trained* facts; recall, not reasoning, is measured. Values come from a small word
list per relation (the numbers 10..99), so a constant guess scores at most 1/90.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

FACTS_SEED = 4321
N_ENTITIES = 40
# relation: its values. Numbers, which the base already writes (it learned sums), so training
# spends its budget on which number, not on spelling new words. 40 entities x 2 = 80 facts: few
# enough that the small budgets of a CPU comparison see each one about 60 times.
VALUES: dict[str, tuple[str, ...]] = {
    "age": tuple(str(n) for n in range(10, 100)),
    "size": tuple(str(n) for n in range(10, 100)),
}
# Phrasings per relation ({e}: the entity). Training sees TRAIN_TEMPLATES only; validation and
# test ask each fact twice, in two phrasings of their own: 160 questions each.
TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "age": ("{e} age?", "The age of {e}?", "Tell me the age of {e}."),
    "size": ("{e} size?", "The size of {e}?", "Tell me the size of {e}."),
}
QUERY_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "validation": {
        "age": ("Which age has {e}?", "Age of {e}?"),
        "size": ("Which size has {e}?", "Size of {e}?"),
    },
    "test": {
        "age": ("What age is {e}?", "Give the age of {e}."),
        "size": ("What size is {e}?", "Give the size of {e}."),
    },
}


@dataclass(frozen=True)
class Fact:
    entity: str
    relation: str
    value: str


def entity_names(n: int = N_ENTITIES, seed: int = FACTS_SEED) -> list[str]:
    """`n` distinct made-up names (consonant-vowel patterns, 4 or 5 letters), in a fixed order."""
    rng = random.Random(seed)
    consonants = [c for c in string.ascii_lowercase if c not in "aeiou"]
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        length = rng.choice((4, 5))
        name = "".join(rng.choice(consonants if i % 2 == 0 else "aeiou") for i in range(length))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def facts(seed: int = FACTS_SEED) -> list[Fact]:
    """Every fact: each entity gets one value per relation, drawn uniformly by `seed`."""
    rng = random.Random(seed + 1)
    return [
        Fact(entity, relation, rng.choice(VALUES[relation]))
        for entity in entity_names(seed=seed)
        for relation in VALUES
    ]


def train_prompts(fact: Fact) -> list[str]:
    """The phrasings a fact is trained under."""
    return [t.format(e=fact.entity) for t in TRAIN_TEMPLATES[fact.relation]]


def queries(fact: Fact, split: str) -> list[str]:
    """The held-out questions about `fact` for "validation" or "test"."""
    return [t.format(e=fact.entity) for t in QUERY_TEMPLATES[split][fact.relation]]

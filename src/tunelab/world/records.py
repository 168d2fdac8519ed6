"""Tiny-world tasks as data records, in the formats the data modules read."""

from __future__ import annotations

import random

from tunelab.world import tasks

# Chat turns as the tiny chat template renders them; the corpus must use the exact same text.
USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"


def chat_records(task: str, split: str, size: int | None = None, seed: int = 0) -> list[dict]:
    """`size` items of a task split as `{"messages": [user, assistant]}` records."""
    return [{"messages": ex.messages()} for ex in tasks.sample(task, split, size, seed)]


def multitask_chat_records(
    names: list[str], split: str, size: int | None = None, seed: int = 0
) -> list[dict]:
    """`size` items of each task's split as chat records, shuffled together (the multi-task mix a
    single multi-task LoRA or a mixture's router trains on)."""
    records = [r for t in names for r in chat_records(t, split, size, seed)]
    random.Random(seed).shuffle(records)
    return records


def _chat_text(ex: tasks.Example) -> str:
    return f"{USER}{ex.prompt}{END}{ASSISTANT}{ex.completion}{END}"


def corpus_records(
    size: int,
    seed: int = 0,
    doc_chars: int = 120,
    chat_tasks: tuple[str, ...] = ("reverse",),
    task_weights: dict[str, float] | None = None,
) -> list[dict]:
    """The pretraining corpus: `size` documents of raw task lines and a few chat turns.

    Arithmetic appears only as raw text ("12+34=46"), so the base model knows addition but has
    never been asked for it in a chat: SFT on the arithmetic chat task measurably unlocks it.
    Chat turns appear only for `chat_tasks`, so the chat format itself is not new to the model.
    """
    task_weights = task_weights or {"arithmetic": 2.0, "reverse": 1.0}
    rng = random.Random(seed)
    pools = {name: tasks.load_split(name, "train") for name in task_weights}
    names = sorted(pools)
    docs = []
    for _ in range(size):
        parts: list[str] = []
        while sum(map(len, parts)) < doc_chars:
            name = rng.choices(names, weights=[task_weights.get(n, 1.0) for n in names])[0]
            ex = rng.choice(pools[name])
            as_chat = name in chat_tasks and rng.random() < 0.5
            parts.append(_chat_text(ex) if as_chat else ex.raw_text + "\n")
        docs.append({"text": "".join(parts)})
    return docs


def wrong_sum(a: int, b: int, rng: random.Random) -> str:
    """A plausible wrong answer to a+b: off by one, off by ten, or its digits swapped."""
    right = a + b
    candidates = {right - 1, right + 1, right + 10, abs(right - 10)}
    swapped = int(str(right)[::-1])
    if swapped != right:
        candidates.add(swapped)
    candidates.discard(right)
    return str(rng.choice(sorted(candidates)))


def _wrong_arithmetic(ex: tasks.Example, rng: random.Random) -> str:
    a, b = (int(x) for x in ex.raw_prompt.rstrip("=").split("+"))
    return wrong_sum(a, b, rng)


def _wrong_copy(ex: tasks.Example, rng: random.Random) -> str:
    """The input text copied in the wrong direction: reversal's and repeat's commonest mistake."""
    wrong = ex.answer[::-1]
    if wrong == ex.answer:  # a palindrome: swap its first two characters instead
        wrong = wrong[1:2] + wrong[0] + wrong[2:]
    if wrong == ex.answer:  # one character repeated ("aa"): change the last one
        wrong = wrong[:-1] + ("b" if wrong[-1] != "b" else "a")
    return wrong


# A plausible wrong answer per task, for rejected completions.
WRONG_ANSWERS = {"arithmetic": _wrong_arithmetic, "reverse": _wrong_copy, "repeat": _wrong_copy}


def preference_records(task: str, split: str, size: int | None = None, seed: int = 0) -> list[dict]:
    """`{prompt, chosen, rejected}` pairs: chosen the right answer, rejected a plausible wrong one.

    Arithmetic's wrong answers are near misses (see `wrong_sum`); reversal's is the word copied
    unreversed, the commonest mistake. Splits are the task's fixed splits.
    """
    rng = random.Random(seed)
    records = []
    for ex in tasks.sample(task, split, size, seed):
        rejected = WRONG_ANSWERS[task](ex, rng)
        # Both completions in the chat form SFT uses (a worked "12+34=46" where the task shows
        # its work): they differ only in the answer.
        shown = ex.completion[: len(ex.completion) - len(ex.answer)]
        records.append({"prompt": ex.prompt, "chosen": ex.completion, "rejected": shown + rejected})
    return records


def unpaired_preference_records(task: str, split: str, size: int | None = None, seed: int = 0) -> list[dict]:
    """KTO's unpaired form: `{prompt, completion, label}`, half desirable, from distinct prompts."""
    records = []
    for i, pair in enumerate(preference_records(task, split, size, seed)):
        good = i % 2 == 0
        completion = pair["chosen"] if good else pair["rejected"]
        records.append({"prompt": pair["prompt"], "completion": completion, "label": good})
    return records


def prompt_records(task: str, split: str, size: int | None = None, seed: int = 0) -> list[dict]:
    """`{prompt, answer}` records for the online objectives: the answer is the chat completion."""
    return [{"prompt": ex.prompt, "answer": ex.completion} for ex in tasks.sample(task, split, size, seed)]

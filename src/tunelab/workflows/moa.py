"""Mixture-of-agents as an evaluation row: N proposer adapters answer, one aggregator picks.

Each proposer (a task adapter on the shared base) greedily answers every held-out item, exactly as
the exact-match eval does. The aggregator (an adapter, or the base with adapters off) reads every
distinct candidate after the prompt and keeps the one it finds most likely: the summed log-
probability of the candidate's tokens and the end-of-turn token, the answer it would most readily
have written itself. A tiny model cannot follow a "here are three answers, write the best" prompt it
never saw, so the aggregator ranks instead of rewriting (the ranking form of MoA/LLM-Blender). The
row is scored like any other; "any proposer right" is reported beside it as the ceiling.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from tunelab.evaluation.generation import generate
from tunelab.workflows.multi_adapter import exact_match_task


@torch.no_grad()
def candidate_logprob(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, prompt: str, candidate: str
) -> float:
    """log p(candidate, end token | prompt) under the model's active adapter."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(candidate, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + answer_ids], device=next(model.parameters()).device)
    logprobs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    targets = ids[0, len(prompt_ids) :]
    return logprobs[len(prompt_ids) - 1 :].gather(1, targets[:, None]).sum().item()


def propose(
    model: PeftModel, tokenizer, prompts: list[str], proposers: list[str], max_new_tokens: int
) -> dict:
    """`{proposer: [answer per prompt]}`, each proposer's greedy answers."""
    answers = {}
    for name in proposers:
        model.set_adapter(name)
        outputs, _ = generate(model, tokenizer, prompts, batch_size=100, max_new_tokens=max_new_tokens)
        answers[name] = [out.split("\n")[0].strip() for out in outputs]
    return answers


def aggregate(
    model: PeftModel, tokenizer, prompts: list[str], answers: dict, aggregator: str | None
) -> list[str]:
    """Per prompt, the candidate the aggregator finds most likely (first proposer's on ties)."""
    model.eval()
    if aggregator is not None:
        model.set_adapter(aggregator)
    chosen = []
    with model.disable_adapter() if aggregator is None else nullcontext():
        for i, prompt in enumerate(prompts):
            candidates = list(dict.fromkeys(column[i] for column in answers.values()))
            scores = [candidate_logprob(model, tokenizer, prompt, c) for c in candidates]
            chosen.append(candidates[max(range(len(candidates)), key=scores.__getitem__)])
    return chosen


def moa_scores(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    task_names: list[str],
    proposers: list[str],
    aggregator: str | None = None,
    limit: int | None = 200,
) -> tuple[dict[str, float], dict[str, float]]:
    """({task: MoA exact match}, {task: fraction where any proposer was right})."""
    moa, ceiling = {}, {}
    for task in task_names:
        spec = exact_match_task(task, limit)
        prompts, expected = spec.prompts(tokenizer)
        answers = propose(model, tokenizer, prompts, proposers, spec.max_new_tokens)
        chosen = aggregate(model, tokenizer, prompts, answers, aggregator)
        moa[task] = sum(c == e for c, e in zip(chosen, expected, strict=True)) / len(expected)
        hits = [any(col[i] == e for col in answers.values()) for i, e in enumerate(expected)]
        ceiling[task] = sum(hits) / len(expected)
    return moa, ceiling

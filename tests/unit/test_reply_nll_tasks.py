"""The teacher-forced tasks of eval=reply_nll, against per-item forward passes written out by hand."""

from __future__ import annotations

import pytest
import torch

from tunelab.core.config import ConfigError
from tunelab.evaluation.own_replies import OwnReplyNLLTask, general_prompts
from tunelab.evaluation.reply_nll import ReplyNLLTask
from tunelab.models.load import load_pretrained
from tunelab.world import asset_path, tasks


def hand_nll(model, tokenizer, chat: list[dict], reply: str) -> tuple[float, int]:
    """(summed -log p, count) of the reply's tokens after the chat prompt: one unpadded forward."""
    prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*chat, {"role": "assistant", "content": reply}], tokenize=False)
    assert full.startswith(prompt)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
    return -sum(float(logprobs[pos - 1, ids[pos]]) for pos in range(len(prompt_ids), len(ids))), len(
        ids
    ) - len(prompt_ids)


@pytest.fixture(scope="module")
def tiny():
    loaded = load_pretrained(str(asset_path("tiny-llama")))
    return loaded.model.eval(), loaded.tokenizer


def test_reply_nll_task_is_the_mean_nll_per_reply_token(tiny):
    model, tokenizer = tiny
    sums = [
        hand_nll(model, tokenizer, ex.messages()[:1], ex.completion)
        for ex in tasks.load_split("arithmetic", "test")[:6]
    ]
    expected = sum(s for s, _ in sums) / sum(n for _, n in sums)
    result = ReplyNLLTask(task="arithmetic", limit=6).run(model, tokenizer, batch_size=4)  # 2 padded batches
    assert result["n"] == 6 and result["tokens"] == sum(n for _, n in sums)
    assert abs(result["answer_nll"] - expected) < 1e-4


def test_own_replies_are_written_once_by_the_first_run_and_scored_after(tiny):
    model, tokenizer = tiny
    task = OwnReplyNLLTask(limit=5, max_new_tokens=6)
    first = task.run(model, tokenizer, batch_size=3)
    replies = list(task.replies)
    assert len(replies) == 5 and [s["prompt"] for s in first["samples"]] == general_prompts()[:5]
    sums = [
        hand_nll(model, tokenizer, [{"role": "user", "content": p}], r)
        for p, r in zip(general_prompts()[:5], replies, strict=True)
    ]
    assert abs(first["answer_nll"] - sum(s for s, _ in sums) / sum(n for _, n in sums)) < 1e-4

    torch.manual_seed(0)
    changed = load_pretrained(str(asset_path("tiny-llama"))).model.eval()
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = task.run(changed, tokenizer, batch_size=3)
    assert task.replies == replies  # scored, not rewritten by the changed model
    sums = [
        hand_nll(changed, tokenizer, [{"role": "user", "content": p}], r)
        for p, r in zip(general_prompts()[:5], replies, strict=True)
    ]
    assert abs(after["answer_nll"] - sum(s for s, _ in sums) / sum(n for _, n in sums)) < 1e-4


def test_own_replies_without_a_baseline_phase_is_a_config_error():
    with pytest.raises(ConfigError, match=r"own-reply task: needs eval\.before=true"):
        OwnReplyNLLTask(before=False)


def test_the_shipped_general_prompts_are_64_distinct_lines():
    prompts = general_prompts()
    assert len(prompts) == 64 == len(set(prompts))

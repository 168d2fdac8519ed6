"""The exact-match task's answer NLL, against a per-item forward pass written out by hand."""

from __future__ import annotations

import torch

from tunelab.evaluation.exact_match import ExactMatchTask
from tunelab.models.load import load_pretrained
from tunelab.world import asset_path, tasks


def hand_mean_nll(model, tokenizer, task: str, limit: int) -> float:
    """One unpadded forward per item; sum -log p of the reply's tokens; divide by their count."""
    total, count = 0.0, 0
    for ex in tasks.load_split(task, "test")[:limit]:
        prompt = tokenizer.apply_chat_template(ex.messages()[:1], tokenize=False, add_generation_prompt=True)
        reply = [*ex.messages()[:1], {"role": "assistant", "content": ex.completion}]
        full = tokenizer.apply_chat_template(reply, tokenize=False)
        assert full.startswith(prompt)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        for pos in range(len(prompt_ids), len(ids)):
            total -= float(logprobs[pos - 1, ids[pos]])
            count += 1
    return total / count


def test_answer_nll_is_the_mean_nll_per_reply_token_batched_or_not():
    loaded = load_pretrained(str(asset_path("tiny-llama")))
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    task = ExactMatchTask(task="reverse", limit=7)
    expected = hand_mean_nll(model, tokenizer, "reverse", 7)
    assert abs(task.reply_nll(model, tokenizer, batch_size=3) - expected) < 1e-4  # 3 padded batches
    assert abs(task.reply_nll(model, tokenizer, batch_size=100) - expected) < 1e-4


def test_answer_nll_is_reported_when_asked_for_on_chat_tasks_only():
    loaded = load_pretrained(str(asset_path("tiny-llama")))

    def run(**kw) -> dict:
        return ExactMatchTask(task="reverse", limit=4, max_new_tokens=7, **kw).run(
            loaded.model, loaded.tokenizer, 4
        )

    assert run(answer_nll=True)["answer_nll"] > 0
    assert "answer_nll" not in run() and "answer_nll" not in run(answer_nll=True, style="raw")

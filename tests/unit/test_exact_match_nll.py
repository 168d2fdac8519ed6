"""The exact-match task's answer NLL, against a per-item forward pass written out by hand."""

from __future__ import annotations

import pytest
import torch

from tunelab.core.config import ConfigError
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
    assert "answer_nll" not in run()


def test_answer_nll_on_a_raw_task_or_an_unknown_style_is_a_config_error():
    with pytest.raises(ConfigError, match="'reverse': answer_nll=true needs style=chat"):
        ExactMatchTask(task="reverse", style="raw", answer_nll=True)
    with pytest.raises(ConfigError, match=r"style='plain'; expected one of \('chat', 'raw'\)"):
        ExactMatchTask(task="reverse", style="plain")


def test_a_bad_eval_task_setting_names_its_key():
    from tunelab.evaluation.runner import build_eval_tasks

    spec = {"_target_": "tunelab.evaluation.exact_match.ExactMatchTask", "task": "reverse", "style": "raw"}
    with pytest.raises(ConfigError, match=r"^eval\.tasks\.rev_raw: exact-match task 'reverse': answer_nll"):
        build_eval_tasks({"rev_raw": {**spec, "answer_nll": True}})
    assert build_eval_tasks({"rev_raw": spec})["rev_raw"].style == "raw"

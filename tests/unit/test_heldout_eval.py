"""The held-out evaluation of the user's data, against independent computations on the tiny model."""

from __future__ import annotations

import pytest
import torch

from tunelab.data.sources import DataError
from tunelab.evaluation.heldout import HeldoutTask, prompt_and_reference
from tunelab.models.load import load_pretrained

RECORDS = [
    {"prompt": f"What is {a}+{b}?", "completion": f"{a}+{b}={a + b}"} for a, b in [(3, 4), (12, 30), (7, 7)]
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_pretrained(str(tiny_model_dir))


def test_records_of_every_kind_give_prompt_and_reference():
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert prompt_and_reference(chat, "r") == ([{"role": "user", "content": "q"}], "a")
    pair = {"prompt": "q", "chosen": "good", "rejected": "bad"}
    assert prompt_and_reference(pair, "r") == ([{"role": "user", "content": "q"}], "good")
    assert prompt_and_reference({"prompt": "q", "answer": "7"}, "r")[1] == "7"
    with pytest.raises(DataError, match="held-out: record 2: no assistant turn"):
        HeldoutTask([chat, {"messages": [{"role": "user", "content": "q"}]}], source="held-out")


def test_answer_nll_is_the_models_own_loss_on_the_answer_tokens(tiny):
    task = HeldoutTask(RECORDS, generation=False)
    result = task.run(tiny.model, tiny.tokenizer, batch_size=2)  # padding inside a batch
    tok = tiny.tokenizer
    total, count = 0.0, 0
    for r in RECORDS:  # one at a time, through HF's own shifted cross-entropy
        prompt = [{"role": "user", "content": r["prompt"]}]
        full = [*prompt, {"role": "assistant", "content": r["completion"]}]
        p_ids = tok(tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))["input_ids"]
        ids = tok(tok.apply_chat_template(full, tokenize=False))["input_ids"]
        labels = [-100] * len(p_ids) + ids[len(p_ids) :]
        with torch.no_grad():
            loss = tiny.model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
        n = len(ids) - len(p_ids)
        total, count = total + loss * n, count + n
    assert result["tokens"] == count
    assert result["nll"] == pytest.approx(total / count, rel=1e-5)


def test_batched_left_padded_generation_matches_one_prompt_at_a_time(tiny):
    task = HeldoutTask(RECORDS, match="number", max_new_tokens=8)
    result = task.run(tiny.model, tiny.tokenizer, batch_size=3)
    tok = tiny.tokenizer
    hits = []
    for r, sample in zip(RECORDS, result["samples"], strict=True):
        text = tok.apply_chat_template(
            [{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        out = tiny.model.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=tok.eos_token_id)
        reply = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
        assert sample["prediction"] == reply
        hits.append(reply.rsplit("=", 1)[-1].strip().rstrip(".") == r["completion"].rsplit("=", 1)[-1])
    assert result["accuracy"] == sum(hits) / len(hits)

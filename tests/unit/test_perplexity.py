"""Held-out perplexity against a hand computation, one text at a time, no padding."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tunelab.data.sources import DataError
from tunelab.evaluation.perplexity import PerplexityTask, heldout_documents
from tunelab.models.load import load_pretrained
from tunelab.world import tasks


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    loaded = load_pretrained(str(tiny_model_dir))
    return loaded.model, loaded.tokenizer


def test_perplexity_equals_exp_of_mean_token_nll_by_hand(tiny, tmp_path):
    model, tokenizer = tiny
    texts = ["12+34=46\n", "reverse abc:cba\n7+8=15\n", "a"]  # lengths differ: padding must not count
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    model.train()
    result = PerplexityTask(path=str(path)).run(model, tokenizer, batch_size=3)
    assert model.training  # restored
    model.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0]
            for pos in range(1, len(ids)):  # token `pos` predicted from the ones before it
                nll -= torch.log_softmax(logits[pos - 1], dim=-1)[ids[pos]].item()
                count += 1
    assert result["tokens"] == count == 8 + 22 + 0  # char-level, no BOS: "a" alone predicts nothing
    assert result["nll"] == pytest.approx(nll / count, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert result["n"] == 3


def test_batching_does_not_change_the_score(tiny):
    model, tokenizer = tiny
    one = PerplexityTask(n_docs=6).run(model, tokenizer, batch_size=1)
    six = PerplexityTask(n_docs=6).run(model, tokenizer, batch_size=6)
    assert six["nll"] == pytest.approx(one["nll"], rel=1e-5) and six["tokens"] == one["tokens"]


def test_heldout_documents_use_only_test_items():
    docs = heldout_documents(["arithmetic", "reverse"], n_docs=5)
    test_lines = {ex.raw_text for t in ("arithmetic", "reverse") for ex in tasks.load_split(t, "test")}
    lines = [line for doc in docs for line in doc.splitlines()]
    assert len(docs) == 5 and all(len(d) >= 120 for d in docs)
    assert set(lines) <= test_lines
    assert any("+" in line for line in lines) and any(line.startswith("reverse") for line in lines)


def test_a_record_without_text_is_a_data_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"txt": "typo"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: .*'text'"):
        PerplexityTask(path=str(path))

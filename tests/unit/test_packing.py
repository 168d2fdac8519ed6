"""Packing: rows built by hand-checkable rules, and no attention across example boundaries."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from transformers import LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.packing import pack_examples, pad_packed
from tunelab.objectives.base import forward_logits
from tunelab.objectives.causal_lm import CausalLMObjective

X = IGNORE_INDEX


def example(ids: list[int], n_prompt: int) -> dict[str, list[int]]:
    """A completion-only example: the first `n_prompt` tokens unlabelled."""
    return {"input_ids": ids, "labels": [X] * n_prompt + ids[n_prompt:]}


EXAMPLES = [
    example([11, 12, 13], 1),  # 3 tokens
    example([21, 22, 23, 24, 25], 2),  # 5
    example([31, 32], 0),  # 2, fully labelled (the cpt case): its first label must still go
    example([41, 42, 43, 44], 2),  # 4
]


def test_best_fit_decreasing_rows_by_hand():
    # Longest first into max_length=8: 5 -> new row (room 3); 4 -> new row (room 4);
    # 3 -> the row with room 3; 2 -> the row with room 4.
    rows = pack_examples(EXAMPLES, max_length=8)
    assert [r["seq_lengths"] for r in rows] == [[5, 3], [4, 2]]
    assert rows[0]["input_ids"] == [21, 22, 23, 24, 25, 11, 12, 13]
    assert rows[0]["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert rows[0]["labels"] == [X, X, 23, 24, 25, X, 12, 13]
    assert rows[1]["input_ids"] == [41, 42, 43, 44, 31, 32]
    assert rows[1]["position_ids"] == [0, 1, 2, 3, 0, 1]
    # Example 3 was fully labelled; its first token is not a target in a packed row.
    assert rows[1]["labels"] == [X, X, 43, 44, X, 32]


def test_every_token_packed_once_and_rows_fit():
    rows = pack_examples(EXAMPLES * 5, max_length=9)
    assert all(len(r["input_ids"]) <= 9 for r in rows)
    packed = sorted(t for r in rows for t in r["input_ids"])
    assert packed == sorted(t for e in EXAMPLES * 5 for t in e["input_ids"])


def test_too_long_example_is_an_error():
    with pytest.raises(ValueError, match="max_length=4"):
        pack_examples([example([1, 2, 3, 4, 5], 1)], max_length=4)


def test_pad_packed_tail_starts_its_own_positions():
    batch = pad_packed(pack_examples(EXAMPLES, max_length=8), pad_id=0)
    assert batch["input_ids"][1].tolist() == [41, 42, 43, 44, 31, 32, 0, 0]
    assert batch["labels"][1].tolist() == [X, X, 43, 44, X, 32, X, X]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 3, 0, 1, 0, 1]


def tiny_llama(attn: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = tiny_llama_config(attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_each_example_alone(attn):
    model = tiny_llama(attn)
    rows = pack_examples(EXAMPLES, max_length=8)
    batch = pad_packed(rows, pad_id=0)
    with torch.no_grad():
        packed = forward_logits(model, batch)
        for r, row in enumerate(rows):
            start = 0
            for n in row["seq_lengths"]:
                alone = model(input_ids=torch.tensor([row["input_ids"][start : start + n]])).logits[0]
                torch.testing.assert_close(packed[r, start : start + n], alone, atol=1e-5, rtol=1e-5)
                start += n


def test_boundary_check_can_fail_without_position_ids():
    # The control: the same packed row with a plain all-ones mask lets example 2 see example 1.
    model = tiny_llama("sdpa")
    rows = pack_examples(EXAMPLES, max_length=8)
    ids = torch.tensor([rows[0]["input_ids"]])
    with torch.no_grad():
        leaky = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, 5:8]
        alone = model(input_ids=torch.tensor([rows[0]["input_ids"][5:8]])).logits[0]
    assert (leaky - alone).abs().max() > 1e-3


def test_packed_loss_equals_mean_nll_of_examples_run_alone():
    model = tiny_llama("sdpa")
    batch = pad_packed(pack_examples(EXAMPLES, max_length=8), pad_id=0)
    with torch.no_grad():
        loss = CausalLMObjective("sft")(model, batch).loss
        total, count = 0.0, 0
        for e in EXAMPLES:  # each example alone, next-token cross-entropy by hand
            logits = model(input_ids=torch.tensor([e["input_ids"]])).logits[0, :-1]
            targets = torch.tensor(e["labels"][1:])
            keep = targets != X
            total += F.cross_entropy(logits[keep], targets[keep], reduction="sum").item()
            count += int(keep.sum())
    assert count == 2 + 3 + 1 + 2  # labelled next tokens: 13 | 23 24 25 | 32 | 43 44
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_sft_data_module_packs_when_asked():
    from tunelab.data.sft import SFTDataModule
    from tunelab.models.load import load_tokenizer
    from tunelab.world import asset_path

    records = [{"prompt": f"What is {i}+{i}?", "completion": str(2 * i)} for i in range(12)]
    data = SFTDataModule(records, packing=True, batch_size=2, max_length=64)
    data.attach_tokenizer(load_tokenizer(str(asset_path("tiny-llama"))))
    batches = list(data.train_dataloader())
    assert all("position_ids" in b and b["input_ids"].shape[1] <= 64 for b in batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    assert real == sum(len(e["input_ids"]) for e in data.train_examples)
    # Fewer rows than examples: several examples share a row.
    assert sum(b["input_ids"].shape[0] for b in batches) < len(data.train_examples)

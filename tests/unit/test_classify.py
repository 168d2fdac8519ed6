"""Classification head: loss and accuracy by hand, the HF export scores like training, data checks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForSequenceClassification, LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.data.classification import ClassificationDataModule, collate_labelled
from tunelab.data.sources import DataError
from tunelab.objectives.classify import (
    HEAD,
    ClassificationAccuracy,
    ClassificationObjective,
    accuracy,
    export_classifier,
    last_token_logits,
)
from tunelab.world.classification import sum_check_records


def test_accuracy_by_hand():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    labels = torch.tensor([0, 1, 1, 0])
    assert accuracy(logits, labels).item() == pytest.approx(0.5)  # rows 0 and 1 right


class FixedHidden(torch.nn.Module):
    """A stand-in LM whose final hidden state is given; the head is the objective's own."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the head takes its device and dtype
        self.config = SimpleNamespace(hidden_size=hidden.shape[-1])

    def forward(self, input_ids, attention_mask, output_hidden_states):
        return type("Out", (), {"hidden_states": (self.hidden,)})


def test_loss_reads_the_last_attended_token_and_is_cross_entropy():
    hidden = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [7.0, 7.0]], [[0.0, 2.0], [5.0, 5.0], [5.0, 5.0]]])
    model = FixedHidden(hidden)
    objective = ClassificationObjective("classify", num_labels=2)
    objective.prepare_model(model)
    with torch.no_grad():
        getattr(model, HEAD).weight.copy_(torch.eye(2))  # logits = the hidden state itself
    batch = {
        "input_ids": torch.zeros(2, 3, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]]),  # last tokens: (1, 0) and (0, 2)
        "labels": torch.tensor([0, 0]),
    }
    out = objective(model, batch)
    # By hand: row 0 logits (1, 0), label 0 -> log(1 + e^-1); row 1 logits (0, 2), label 0 -> log(1 + e^2)
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(2))) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.metrics["accuracy"].item() == pytest.approx(0.5)
    assert out.supervised_tokens.item() == 2


def test_exported_classifier_matches_the_trained_head(tmp_path, tiny_model_dir):
    from tunelab.models.load import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    torch.manual_seed(0)
    config = tiny_llama_config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_attention_heads=2,
        max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    ClassificationObjective("classify", num_labels=3).prepare_model(model)
    rows = [
        {"input_ids": tokenizer(t, add_special_tokens=False)["input_ids"], "label": 0}
        for t in ("12+34=46", "1+2=3", "99+99=198")
    ]
    batch = collate_labelled(rows, tokenizer.pad_token_id)
    with torch.no_grad():
        ours = last_token_logits(model, batch["input_ids"], batch["attention_mask"])
    export_classifier(model, tokenizer, tmp_path)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert theirs.shape == (3, 3)
    assert torch.allclose(ours, theirs, atol=1e-5)  # HF's own last-non-pad pooling agrees

    task = ClassificationAccuracy(
        [{"text": "12+34=46", "label": 1}, {"text": "1+2=4", "label": 0}, {"text": "5+5=10", "label": 1}]
    )
    result = task.run(model, tokenizer, batch_size=2)
    texts = [
        {"input_ids": tokenizer(r["text"], add_special_tokens=False)["input_ids"], "label": r["label"]}
        for r in task.records
    ]
    b = collate_labelled(texts, tokenizer.pad_token_id)
    with torch.no_grad():
        hf_pred = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.argmax(-1)
    assert result["accuracy"] == pytest.approx((hf_pred == b["labels"]).float().mean().item())
    assert result["majority"] == pytest.approx(2 / 3) and result["n"] == 3
    assert ClassificationAccuracy(task.records).run(LlamaForCausalLM(config), tokenizer, 2) == {}


def test_sum_check_records_are_balanced_and_labelled_right():
    records = sum_check_records("test", size=50, seed=0)
    assert sum(r["label"] for r in records) == 25
    for r in records:
        left, total = r["text"].split("=")
        a, b = (int(x) for x in left.split("+"))
        assert r["label"] == int(a + b == int(total))


def test_bad_label_is_a_data_error():
    with pytest.raises(DataError, match="record 2: field 'label'"):
        ClassificationDataModule([{"text": "1+1=2", "label": 1}, {"text": "1+1=3", "label": 2}])
    with pytest.raises(DataError, match="record 1: expected a non-empty string field 'text'"):
        ClassificationDataModule([{"label": 1}])

"""The LM head at supervised positions only: the same SFT loss and gradients as full logits.

The reference is computed independently: the model's full logits and `F.cross_entropy` over the
shifted labels, not through tunelab's log-prob helpers.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch.nn import functional as F
from transformers import LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.core.constants import IGNORE_INDEX
from tunelab.objectives.causal_lm import CausalLMObjective

VOCAB = 64


def tiny_llama(tied: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = tiny_llama_config(vocab_size=VOCAB, max_position_embeddings=2048, tie_word_embeddings=tied)
    return LlamaForCausalLM(config).train()


def padded_batch() -> dict[str, torch.Tensor]:
    """Two rows: a prompt then a completion, the second right-padded (labels -100 on padding)."""
    torch.manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    labels = ids.clone()
    labels[0, :6] = IGNORE_INDEX  # prompt of row 0
    labels[1, :3] = IGNORE_INDEX  # prompt of row 1
    labels[1, 7:] = IGNORE_INDEX  # padding
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def packed_batch() -> dict[str, torch.Tensor]:
    """One packed row of two examples (4 and 5 tokens) and a padding tail."""
    batch = padded_batch()
    ids = batch["input_ids"][:1].clone()
    labels = ids.clone()
    labels[0, :2] = IGNORE_INDEX
    labels[0, 4:6] = IGNORE_INDEX  # second example's prompt; its first token is never a target
    labels[0, 9] = IGNORE_INDEX  # padding
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3, 4, 0]])
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "position_ids": positions,
    }


def reference_loss(model, batch) -> torch.Tensor:
    """Mean NLL over supervised next tokens from the model's full logits (independent path)."""
    kwargs = {"attention_mask": batch["attention_mask"]}
    if "position_ids" in batch:
        kwargs = {"position_ids": batch["position_ids"], "use_cache": False}
    logits = model(input_ids=batch["input_ids"], **kwargs).logits
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE_INDEX
    )


def loss_and_grads(loss: torch.Tensor, model) -> tuple[float, dict[str, torch.Tensor]]:
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.item(), dict(zip(params, grads, strict=True))


@pytest.mark.parametrize("make_batch", [padded_batch, packed_batch])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_same_loss_and_gradients_as_full_logits(make_batch, tied, chunk_size):
    model = tiny_llama(tied)
    batch = make_batch()
    expected, expected_grads = loss_and_grads(reference_loss(model, batch), model)
    out = CausalLMObjective("sft", chunk_size=chunk_size)(model, batch)
    got, got_grads = loss_and_grads(out.loss, model)

    assert out.supervised_tokens.item() == (batch["labels"][:, 1:] != IGNORE_INDEX).sum().item()
    assert got == pytest.approx(expected, rel=1e-5)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_lora_model_same_gradients_and_head_sees_only_supervised_rows():
    model = get_peft_model(tiny_llama(tied=True), LoraConfig(r=4, target_modules="all-linear"))
    batch = padded_batch()
    expected, expected_grads = loss_and_grads(reference_loss(model, batch), model)
    rows_seen = []
    head = model.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, args, out: rows_seen.append(args[0].shape[:-1].numel()))
    out = CausalLMObjective("sft")(model, batch)
    handle.remove()
    got, got_grads = loss_and_grads(out.loss, model)

    # Row 0 supervises positions 6..9 (4 targets), row 1 positions 3..6 (4 targets): 8 of 20.
    assert rows_seen == [8]
    assert got == pytest.approx(expected, rel=1e-5)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_full_logits_path_when_switched_off():
    model = tiny_llama(tied=True)
    rows_seen = []
    model.lm_head.register_forward_hook(lambda m, args, out: rows_seen.append(args[0].shape[:-1].numel()))
    CausalLMObjective("sft", supervised_head=False)(model, padded_batch())
    assert rows_seen == [20]


def test_preference_sequence_logps_equal_full_logits_sums():
    from tunelab.objectives.preference import model_sequence_logps

    model = tiny_llama(tied=True)
    batch = padded_batch()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    nll = F.cross_entropy(
        logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
    )
    expected = -nll.sum(-1)
    (expected_grad,) = torch.autograd.grad(expected.sum(), model.lm_head.weight)
    logps, tokens = model_sequence_logps(model, batch)
    (grad,) = torch.autograd.grad(logps.sum(), model.lm_head.weight)

    assert tokens.tolist() == [4, 4]
    torch.testing.assert_close(logps, expected)
    torch.testing.assert_close(grad, expected_grad)

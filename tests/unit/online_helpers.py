"""Helpers for the online-objective tests: a tiny in-memory Llama, a stub tokenizer, a reward."""

from __future__ import annotations

import torch
from transformers import LlamaForCausalLM

from tests.conftest import tiny_llama_config

PAD, EOS = 0, 2


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A 1-layer Llama over 16 token ids, random weights fixed by `seed`."""
    torch.manual_seed(seed)
    config = tiny_llama_config(
        vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=32, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=1,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


class StubTokenizer:
    """Token id i decodes to the letter chr(97 + i); the end token to nothing."""

    pad_token_id, eos_token_id = PAD, EOS

    def batch_decode(self, rows: list[list[int]], skip_special_tokens: bool = True) -> list[str]:
        return ["".join(chr(97 + i) for i in row if i not in (PAD, EOS)) for row in rows]


def first_letter(prompts: list[str], completions: list[str], answers: list[str]) -> list[float]:
    """A reward that varies across samples: the first letter's code mod 5."""
    return [float(ord(c[0]) % 5) if c else 0.0 for c in completions]


def prompt_batch() -> dict:
    """Two left-padded prompts with their strings."""
    return {
        "input_ids": torch.tensor([[PAD, 5, 6], [7, 8, 9]]),
        "attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]]),
        "prompts": ["p1", "p2"],
        "answers": ["a1", "a2"],
    }


def row_logprobs(model, prompt: list[int], completion: list[int], temperature: float = 1.0) -> torch.Tensor:
    """log p(completion token t | prefix) for one unpadded row, written out independently."""
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0] / temperature
    logprobs = torch.log_softmax(logits.double(), -1)
    return torch.stack([logprobs[len(prompt) + t - 1, tok] for t, tok in enumerate(completion)])

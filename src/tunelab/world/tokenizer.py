"""The tiny world's tokenizer: one token per printable character plus chat special tokens.

Character-level keeps digits and letters separate, which is what arithmetic and string reversal
need, and keeps the vocabulary (and the model) tiny.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, UNK, END = "<|pad|>", "<|unk|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, UNK, END, *ROLE_TOKENS)

# Roles are special tokens so that a prompt can never spoof a turn boundary with plain text.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def character_vocabulary() -> list[str]:
    """Special tokens first, then every printable ASCII character and newline."""
    chars = sorted(set(string.printable) - set("\t\r\x0b\x0c"))
    return [*SPECIAL_TOKENS, *chars]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level HF fast tokenizer with the tiny-world chat template."""
    vocab = {tok: i for i, tok in enumerate(character_vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=END,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=256,
        padding_side="right",
    )

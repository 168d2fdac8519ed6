"""Rebuild the tiny world's base model from scratch, reproducibly, with tunelab itself.

    python scripts/build_tiny_world.py [extra Hydra overrides, e.g. trainer.max_steps=200]

1. writes the character tokenizer and a small Llama config.json to build/tiny-llama-init;
2. pretrains it with `python train.py experiment=tiny_world_pretrain` (objective=cpt,
   adapter=full) on the synthetic corpus;
3. copies the trained model and tokenizer to src/tunelab/world/assets/tiny-llama.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from transformers import LlamaConfig

from tunelab.world.tokenizer import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
INIT_DIR = ROOT / "build" / "tiny-llama-init"
RUN_DIR = ROOT / "build" / "tiny-llama-pretrain"
ASSET_DIR = ROOT / "src" / "tunelab" / "world" / "assets" / "tiny-llama"


def tiny_llama_config(vocab_size: int, pad_id: int, eos_id: int) -> LlamaConfig:
    """The tiny base's architecture: 4 layers, width 192, ~1.8M parameters."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=6,
        num_key_value_heads=6,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
    )


def write_init_dir() -> None:
    """Tokenizer and config.json: everything init_from_config needs."""
    tokenizer = build_tokenizer()
    INIT_DIR.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(INIT_DIR)
    config = tiny_llama_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    config.save_pretrained(INIT_DIR)


def pretrain(extra_overrides: list[str]) -> None:
    """Run the harness's cpt objective on the synthetic corpus."""
    if RUN_DIR.exists():
        shutil.rmtree(RUN_DIR)
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "experiment=tiny_world_pretrain",
        f"model.name_or_path={INIT_DIR}",
        f"hydra.run.dir={RUN_DIR}",
        *extra_overrides,
    ]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def install_assets() -> None:
    """Copy the trained model directory into the package."""
    if ASSET_DIR.exists():
        shutil.rmtree(ASSET_DIR)
    shutil.copytree(RUN_DIR / "model", ASSET_DIR)
    shutil.copy(RUN_DIR / "metrics.json", ASSET_DIR / "pretrain_metrics.json")
    print(f"installed {ASSET_DIR}")


if __name__ == "__main__":
    write_init_dir()
    pretrain(sys.argv[1:])
    install_assets()

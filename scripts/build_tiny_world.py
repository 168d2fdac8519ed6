"""Rebuild the tiny world's base model from scratch, reproducibly, with tunelab itself.

    python scripts/build_tiny_world.py [extra Hydra overrides, e.g. trainer.max_steps=200]

1. writes the character tokenizer and a small Llama config.json to build/tiny-llama-init;
2. stage 1: pretrains it with `python train.py experiment=tiny_world_pretrain` (objective=cpt,
   adapter=full) on the synthetic corpus (4000 steps);
3. stage 2: continues pretraining the stage-1 model with `experiment=tiny_world_stage2`
   (500 steps on a corpus that adds the chat "Repeat <text>" task);
4. copies the stage-2 model and tokenizer to src/tunelab/world/assets/tiny-llama.

Extra arguments are Hydra overrides applied to both stages.
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
STAGE2_DIR = ROOT / "build" / "tiny-llama-stage2"
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


def run_stage(experiment: str, model_dir: Path, run_dir: Path, extra_overrides: list[str]) -> None:
    """Run the harness's cpt objective for one stage, from `model_dir`, into `run_dir`."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        f"experiment={experiment}",
        f"model.name_or_path={model_dir}",
        f"hydra.run.dir={run_dir}",
        *extra_overrides,
    ]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def install_assets() -> None:
    """Copy the trained model directory into the package."""
    if ASSET_DIR.exists():
        shutil.rmtree(ASSET_DIR)
    shutil.copytree(STAGE2_DIR / "model", ASSET_DIR)
    shutil.copy(RUN_DIR / "metrics.json", ASSET_DIR / "pretrain_metrics.json")
    shutil.copy(STAGE2_DIR / "metrics.json", ASSET_DIR / "stage2_metrics.json")
    print(f"installed {ASSET_DIR}")


if __name__ == "__main__":
    write_init_dir()
    run_stage("tiny_world_pretrain", INIT_DIR, RUN_DIR, sys.argv[1:])
    run_stage("tiny_world_stage2", RUN_DIR / "model", STAGE2_DIR, sys.argv[1:])
    install_assets()

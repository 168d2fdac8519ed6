#!/usr/bin/env bash
# The prepared GPU check (H100/H200, under 8 minutes): bf16 full / LoRA / QLoRA on a
# Qwen2.5-0.5B-shaped random model with packed 2k-token rows, tunelab and TRL side by side,
# tokens/s, MFU against the dense bf16 peak, peak memory; FSDP2 on one GPU as a smoke test.
#
# NEVER RUN ON A GPU YET. Only its CPU dry run has run:
#   python scripts/gpu_check.py --tiny --accelerator cpu --steps 4 --warmup 1 --batch-size 2 --row-length 256
#
# Usage: scripts/gpu_check.sh [extra gpu_check.py flags]; writes ${OUT:-.}/gpu_check.json.
# Needs (no network): torch with CUDA, transformers, peft, lightning, hydra-core, bitsandbytes, trl;
# flash-attn is used when importable, sdpa otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
OUT_DIR="${OUT:-.}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python - <<'PY'
import importlib, sys
missing = []
for name in ("torch", "transformers", "peft", "lightning", "hydra", "bitsandbytes", "trl", "datasets"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except ImportError:
        missing.append(name)
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh: torch sees no CUDA device")
if missing:
    sys.exit(f"gpu_check.sh: missing packages {missing} (pip install -e .[bench] where a network is)")
print(torch.cuda.get_device_name(), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY
# 7 arms, each a fresh process: ~30-60 s apiece on an H100/H200.
timeout 470 python scripts/gpu_check.py --steps 20 --warmup 5 --batch-size 4 --row-length 2048 \
    --json "$OUT_DIR/gpu_check.json" "$@"

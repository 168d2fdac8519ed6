"""DeepSpeed ZeRO on CPU (gloo) without Lightning: does a stage train, and match one process?

    DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 torchrun --nproc_per_node=2 scripts/deepspeed_cpu_check.py 3

Prints the per-step losses (mean over ranks) on rank 0. A small MLP on fixed random data, global
batch 8 split over the ranks; compare the output of --nproc_per_node=1 and 2. Lightning's
DeepSpeedStrategy (what strategy=deepspeed_zero* instantiates) refuses any non-CUDA accelerator,
so this is how far DeepSpeed goes on a CPU machine; see docs/scaling.md.
"""

from __future__ import annotations

import json
import os
import sys

import deepspeed
import torch

STEPS, BATCH = 5, 8


def main(stage: int) -> list[float]:
    """Train STEPS steps with ZeRO `stage` in this process group; the mean loss of each step."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)  # DeepSpeed's fused Adam needs CUDA
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    config = {
        "train_batch_size": BATCH,
        "train_micro_batch_size_per_gpu": BATCH // world,
        "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True,
    }
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    data = torch.Generator().manual_seed(1)
    inputs = torch.randn(STEPS, BATCH, 16, generator=data)
    targets = torch.randn(STEPS, BATCH, 1, generator=data)
    shard = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    losses = []
    for step in range(STEPS):
        loss = torch.nn.functional.mse_loss(engine(inputs[step, shard]), targets[step, shard])
        engine.backward(loss)
        engine.step()
        total = loss.detach().clone()
        torch.distributed.all_reduce(total)
        losses.append(total.item() / world)
    return losses


if __name__ == "__main__":
    losses = main(int(sys.argv[1]))
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"zero{sys.argv[1]} world={os.environ.get('WORLD_SIZE', 1)} losses={json.dumps(losses)}")

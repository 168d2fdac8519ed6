#!/usr/bin/env bash
# Full fine-tuning of Llama-3.2-1B with FSDP on 2 nodes x 4 GPUs, submitted from a login node
# through Hydra's submitit launcher (conf/hydra/launcher/slurm.yaml). submitit starts one task per
# GPU with srun; Lightning's SLURM environment reads SLURM_PROCID/SLURM_NTASKS, so the trainer's
# devices x num_nodes must equal tasks_per_node x nodes. Only rank 0 writes the run directory.
# The launcher, its preemption requeue and a sweep were run on a one-node CPU cluster
# (tests/integration/test_slurm.py); this 2 x 4-GPU FSDP request is untested (no GPU cluster here).
set -euo pipefail
cd "$(dirname "$0")/.."
python train.py -m hydra/launcher=slurm_gpu \
  hydra.launcher.partition="${PARTITION:-gpu}" \
  hydra.launcher.nodes=2 hydra.launcher.tasks_per_node=4 hydra.launcher.gpus_per_node=4 \
  hydra.launcher.cpus_per_task=8 hydra.launcher.timeout_min=240 \
  model=llama-3.2-1b adapter=full precision=bf16_mixed strategy=fsdp \
  trainer.devices=4 trainer.num_nodes=2 \
  preemption.signal=SIGUSR2 resume=auto \
  lr=1e-5,2e-5

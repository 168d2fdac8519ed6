#!/usr/bin/env bash
# The mixture table of docs/adapters.md for one seed: three task experts, a multi-task LoRA, an
# X-LoRA gate over the experts, then every variant scored on every task.
#   bash scripts/mixture_seeds.sh SEED OUT_ROOT      (writes OUT_ROOT/seed<SEED>/...)
# Aggregate several seeds with: python scripts/mixture_table.py OUT_ROOT/seed*/table/results.json
set -euo pipefail
seed=$1
out=$2/seed$seed
steps=${STEPS:-150}
limit=${LIMIT:-100}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
common=(seed="$seed" trainer.max_steps="$steps" eval=none trainer.enable_progress_bar=false)
for t in arithmetic reverse repeat; do
  python train.py data.train.task="$t" "${common[@]}" hydra.run.dir="$out/$t"
done
python train.py data=multitask "${common[@]}" hydra.run.dir="$out/multitask"
python train.py adapter=xlora data=multitask "${common[@]}" hydra.run.dir="$out/xlora" \
  +adapter.experts.arithmetic="$out/arithmetic" +adapter.experts.reverse="$out/reverse" \
  +adapter.experts.repeat="$out/repeat"
python scripts/combine_adapters.py arithmetic="$out/arithmetic" reverse="$out/reverse" repeat="$out/repeat" \
  --combination cat --weights 0.333,0.333,0.333 --arrow 1 --xlora "$out/xlora" \
  --multitask "$out/multitask" --moa base --limit "$limit" --out "$out/table"

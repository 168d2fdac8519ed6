"""The pruning stage of a run: merge the trained model, prune, evaluate, save `pruned/`.

run.py calls `observe` before the adapter is applied and `run` after the trained artifact is
saved. Metrics: `prune/<stat>_before` and `prune/<stat>` (params, non-zeros, sparsity), and the
eval tasks on the pruned model as `pruned/<task>/<metric>` (the unpruned trained model's scores
are the run's `eval/` keys). `output_model` names the saved directory, which `AutoModelFor
CausalLM.from_pretrained` loads and the pipeline hands to the next stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.adapters.base import Adapter
from tunelab.core.config import instantiate_clearly
from tunelab.evaluation.runner import evaluate
from tunelab.pruning.base import NoPruning, Pruner, sparsity_stats

PRUNED_DIR = "pruned"


def build_pruner(node: Any) -> Pruner:
    """`cfg.prune` instantiated (NoPruning when absent); a constructor's ConfigError as itself."""
    return NoPruning() if node is None else instantiate_clearly(node)


def run_pruning(
    pruner: Pruner,
    model: nn.Module,
    adapter: Adapter,
    tokenizer: PreTrainedTokenizerBase,
    eval_tasks: dict,
    batch_size: int,
    out_dir: Path,
    samples: Path | None = None,
) -> dict[str, Any]:
    """Prune the trained `model` (its adapter merged first) and report; {} for `prune=none`."""
    if not pruner.enabled:
        return {}
    merged = adapter.merge(model)  # in place for peft (merge_and_unload); the artifact is saved already
    before = sparsity_stats(merged, pruner.target_pattern)
    pruned = pruner.prune(merged)
    after = sparsity_stats(pruned, pruner.target_pattern)
    metrics: dict[str, Any] = {f"prune/{k}_before": v for k, v in before.items()}
    metrics |= {f"prune/{k}": v for k, v in after.items()}
    metrics |= evaluate(pruned, tokenizer, eval_tasks, batch_size, "pruned", samples)
    target = out_dir / PRUNED_DIR
    pruned.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return metrics | {"prune/method": pruner.name, "output_model": PRUNED_DIR}

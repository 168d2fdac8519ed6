"""What quantizing the base alone does to a run's scores: the eval tasks on the loaded model, then
on the same model after the adapter's `apply` with no training step (a LoRA adapter starts at B = 0,
so for `adapter=qlora` this is the 4-bit base itself). Prints before, after and after - before.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/quantization_drift.py \\
        model=smollm2-135m-instruct adapter=qlora eval=reply_nll '~eval.tasks.reverse'

Why: a run's `baseline/` scores are taken before the adapter is applied, so a QLoRA run's
`delta/` includes the quantization of its base as well as what training changed.
"""

from __future__ import annotations

import sys

from hydra.utils import instantiate

from tunelab.core.config import PACKAGE_CONF, register_resolvers
from tunelab.evaluation.runner import build_eval_tasks, deltas, evaluate
from tunelab.results.comparison import TrainConfigs
from tunelab.scaling.model_levers import build_adapter_for


def main(overrides: list[str]) -> None:
    register_resolvers()
    cfg = TrainConfigs(PACKAGE_CONF).compose(overrides)
    tasks = build_eval_tasks(cfg.eval.tasks)
    loaded = instantiate(cfg.model)
    before = evaluate(loaded.model, loaded.tokenizer, tasks, cfg.eval.batch_size, "before")
    model = build_adapter_for(cfg).apply(loaded.model)
    scores = before | evaluate(model, loaded.tokenizer, tasks, cfg.eval.batch_size, "after")
    for key, change in deltas(scores, before="before", after="after").items():
        name = key.removeprefix("delta/")
        then, now = scores[f"before/{name}"], scores[f"after/{name}"]
        print(f"{name:32s} before {then:.4f}  after apply {now:.4f}  change {change:+.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Measured memory of one training step beside the estimator's figures (CPU: resident set size).

    python scripts/bench_memory.py model=smollm2-135m-instruct adapter=lora \
        data.batch_size=8 data.max_length=64

Each configuration runs in its own fresh process (RSS peaks do not reset otherwise). The model,
adapter, optimizer and objective are built as a run builds them; the batch is random token ids of
`data.batch_size` x `data.max_length`, every position supervised (the estimator's assumption).
Printed as one JSON line:

- `rss_start`: resident set after importing torch/transformers/lightning/tunelab, before the model;
- `rss_ready`: after loading the model, applying the adapter and building the optimizer;
- `saved_activations`: bytes autograd saved for backward in the step's forward (saved-tensor hooks,
  each storage counted once), split into the LM-head/log-softmax part (`saved_logits`, tensors
  with the vocabulary as last dimension) and the rest (`saved_blocks`);
- `peak`: the process's peak resident set (VmHWM) over two forward/backward/optimizer steps;
- `estimate_*`: `tunelab.scaling.memory.estimate` of the same composed config.

Memory, not speed: a benchmark, not a test. Numbers in docs/scaling.md.
"""

from __future__ import annotations

import json
import sys


def status_bytes(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(overrides: list[str]) -> dict:
    """One configuration's measured and estimated bytes."""
    import lightning  # noqa: F401  (a run imports it: part of the process baseline)
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from tunelab.core.config import PACKAGE_CONF
    from tunelab.scaling.memory import estimate
    from tunelab.scaling.model_levers import build_adapter_for

    with initialize_config_dir(config_dir=str(PACKAGE_CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    est = estimate(cfg)
    rss_start = status_bytes("VmRSS")
    torch.manual_seed(0)
    loaded = instantiate(cfg.model)
    adapter = build_adapter_for(cfg)
    model = adapter.apply(loaded.model)
    model.train()
    optimizer = instantiate(cfg.optimizer.optimizer)(adapter.param_groups(model))
    objective = instantiate(cfg.objective)
    rss_ready = status_bytes("VmRSS")
    b, s = cfg.data.batch_size, cfg.data.max_length
    ids = torch.randint(10, model.config.vocab_size - 1, (b, s))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    saved: dict[tuple[int, int], tuple[int, bool]] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}  # linears save their weight

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.numel() and t.untyped_storage().data_ptr() not in weights:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            saved[key] = (
                t.untyped_storage().nbytes(),
                t.dim() > 0 and t.shape[-1] == model.config.vocab_size,
            )
        return t

    for step in range(2):
        if step == 0:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = objective(model, batch).loss
        else:
            loss = objective(model, batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    logits = sum(n for n, is_logits in saved.values() if is_logits)
    blocks = sum(n for n, is_logits in saved.values() if not is_logits)
    gib = 1024**3
    return {
        "overrides": " ".join(overrides),
        "rss_start": rss_start / gib,
        "rss_ready": rss_ready / gib,
        "saved_blocks": blocks / gib,
        "saved_logits": logits / gib,
        "peak": status_bytes("VmHWM") / gib,
        "estimate_weights": est.weights / gib,
        "estimate_gradients": est.gradients / gib,
        "estimate_optimizer": est.optimizer_state / gib,
        "estimate_activations": est.activations / gib,
        "estimate_total": est.total / gib,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1:])), flush=True)

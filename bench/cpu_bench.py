"""CPU benchmarks of the light commands and token throughput (not a timed test).

Usage: python bench/cpu_bench.py [--repeats 7] [--out bench/results/cpu.json] [--no-train-step]

Measures the wall time of whole commands as a user runs them (a fresh process each time, median of
repeats): `distok --help`, `inspect`, `diff`, `encode`, `sample --n 50`; and in-process tokens per
second of `encode` and `sample` (numpy MLP forward + file write). Needs a trained run: it trains the
tiny recipe for a few steps into a temporary folder first (that part is not timed).

Also one DisTok training step (Trainer.train_step, n = 8, text side) on the full-size CLIP ViT-L/14 text
encoder with random weights (bench/fullsize.py), once as the code runs it (positions up to the last EOS)
and once padded to CLIP's 77 positions as before 0.2.0: the speed-up of TextSide's trimming on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS_S = {"help": 0.5, "inspect": 0.5, "diff": 0.5, "encode": 0.5, "sample_n50": 0.5}


def timed(cmd: list[str], repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-300:]}")
    return statistics.median(times)


def train_step_ms(work: Path, n: int = 8, classes: int = 12, reps: int = 5) -> dict[str, float]:
    """Median ms of Trainer.train_step on full-size CLIP-L (fp32, CPU), trimmed and padded to 77.

    ``classes`` of the 60 keep the start-up cache (K·(K−1) pair prompts) short; a step costs the same."""
    import torch

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import fullsize

    from distok_cli.backends.textside import TextSide
    from distok_cli.backends.token_estimators import TextEstimator
    from distok_cli.files import recipes
    from distok_cli.method.trainer import Trainer

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = recipes.load("kandinsky21-animals")
    names = list(cfg.classes)[:classes]
    cfg = recipes.override(cfg, ["estimator.kind=text", f"train.n={n}", f"classes={','.join(names)}"])
    tok = fullsize.clip_tokenizer(names)
    text = TextSide(tok, fullsize.clip_text("cpu", tok), "bench:clip-vit-large-patch14")
    est = TextEstimator(text, names, "a photo of a {}", "a photo of a <>", 1.0, "bench")
    out: dict[str, float] = {}
    for label, padded in (("train_step_ms_n8_trimmed", False), ("train_step_ms_n8_padded77", True)):
        with fullsize.padded_to_77(text) if padded else contextlib.nullcontext():
            trainer = Trainer(cfg, work / f"bench-{label}", text, est, "cpu")
            trainer.train_step()  # warm-up
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                trainer.train_step()
                times.append(time.perf_counter() - t)
        out[label] = statistics.median(times) * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu.json"))
    ap.add_argument("--no-train-step", action="store_true", help="skip the full-size training-step figure (~2 min)")
    args = ap.parse_args()
    distok = shutil.which("distok") or sys.exit("install distok first (pip install -e .)")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    work = Path(tempfile.mkdtemp(prefix="distok-bench-"))
    run = work / "run"
    subprocess.run(
        [distok, "train", "-o", str(run), "--steps", "4", "-q", "--set", "estimator.kind=text"], check=True, env=env
    )
    tok = work / "t.distok"
    subprocess.run(
        [distok, "encode", "pig:0.55,sheep:0.25,snake:0.2", "-m", str(run), "-o", str(tok)], check=True, env=env
    )
    golden = ROOT / "formats" / "examples" / "pig-sheep-snake.distok"
    res: dict[str, object] = {}
    res["help"] = timed([distok, "--help"], args.repeats, env)
    res["inspect"] = timed([distok, "inspect", str(tok)], args.repeats, env)
    res["diff"] = timed([distok, "diff", str(tok), str(golden)], args.repeats, env)
    res["encode"] = timed(
        [distok, "encode", "pig:0.5,owl:0.5", "-m", str(run), "-o", str(work / "e.distok"), "--overwrite"],
        args.repeats,
        env,
    )
    res["sample_n50"] = timed(
        [distok, "sample", "--n", "50", "-m", str(run), "-o", str(work / "s"), "--overwrite", "-q"], args.repeats, env
    )

    sys.path.insert(0, str(ROOT))
    from distok_cli.files import checkpoint, tokenfile
    from distok_cli.method import generate

    ck = checkpoint.load(run)
    n = 2000
    t = time.perf_counter()
    toks = list(generate.sample(ck, n, "gaussian", 1.0, 0))
    res["sample_tokens_per_s_in_memory"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(500):
        generate.encode(ck, {"pig": 0.5 + i / 2000, "owl": 0.5 - i / 2000})
    res["encode_tokens_per_s_in_memory"] = 500 / (time.perf_counter() - t)
    t = time.perf_counter()
    for i, tk in enumerate(toks[:500]):
        tokenfile.save(tk, work / "w" / f"{i}.distok")
    res["write_token_files_per_s"] = 500 / (time.perf_counter() - t)
    if not args.no_train_step:
        res.update(train_step_ms(work))
    shutil.rmtree(work, ignore_errors=True)

    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "repeats": args.repeats,
        "seconds": {k: round(v, 4) for k, v in res.items() if k in TARGETS_S},
        "throughput": {k: round(v, 1) for k, v in res.items() if k not in TARGETS_S and not k.startswith("train")},
        "train_step_ms": {k: round(v, 1) for k, v in res.items() if k.startswith("train")},
        "targets_s": TARGETS_S,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

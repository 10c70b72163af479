"""CPU benchmarks of the light commands and token throughput (not a timed test).

Usage: python bench/cpu_bench.py [--repeats 7] [--out bench/results/cpu.json]

Measures the wall time of whole commands as a user runs them (a fresh process each time, median of
repeats): `distok --help`, `inspect`, `diff`, `encode`, `sample --n 50`; and in-process tokens per
second of `encode` and `sample` (numpy MLP forward + file write). Needs a trained run: it trains the
tiny recipe for a few steps into a temporary folder first (that part is not timed).
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu.json"))
    args = ap.parse_args()
    distok = shutil.which("distok") or sys.exit("install distok first (pip install -e .)")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    work = Path(tempfile.mkdtemp(prefix="distok-bench-"))
    run = work / "run"
    subprocess.run([distok, "train", "-o", str(run), "--steps", "4", "-q", "--set", "estimator.kind=text"], check=True, env=env)
    tok = work / "t.distok"
    subprocess.run([distok, "encode", "pig:0.55,sheep:0.25,snake:0.2", "-m", str(run), "-o", str(tok)], check=True, env=env)
    golden = ROOT / "formats" / "examples" / "pig-sheep-snake.distok"
    res: dict[str, object] = {}
    res["help"] = timed([distok, "--help"], args.repeats, env)
    res["inspect"] = timed([distok, "inspect", str(tok)], args.repeats, env)
    res["diff"] = timed([distok, "diff", str(tok), str(golden)], args.repeats, env)
    res["encode"] = timed([distok, "encode", "pig:0.5,owl:0.5", "-m", str(run), "-o", str(work / "e.distok"), "--overwrite"], args.repeats, env)
    res["sample_n50"] = timed([distok, "sample", "--n", "50", "-m", str(run), "-o", str(work / "s"), "--overwrite", "-q"], args.repeats, env)

    sys.path.insert(0, str(ROOT))
    from distok_cli import checkpoint, generate, tokenfile

    ck = checkpoint.load(run)
    n = 2000
    t = time.perf_counter()
    toks = generate.sample(ck, n, "gaussian", 1.0, 0)
    res["sample_tokens_per_s_in_memory"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(500):
        generate.encode(ck, {"pig": 0.5 + i / 2000, "owl": 0.5 - i / 2000})
    res["encode_tokens_per_s_in_memory"] = 500 / (time.perf_counter() - t)
    t = time.perf_counter()
    for i, tk in enumerate(toks[:500]):
        tokenfile.save(tk, work / "w" / f"{i}.distok")
    res["write_token_files_per_s"] = 500 / (time.perf_counter() - t)
    shutil.rmtree(work, ignore_errors=True)

    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "repeats": args.repeats,
        "seconds": {k: round(v, 4) for k, v in res.items() if k in TARGETS_S},
        "throughput": {k: round(v, 1) for k, v in res.items() if k not in TARGETS_S},
        "targets_s": TARGETS_S,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

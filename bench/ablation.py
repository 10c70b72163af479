"""The consistency ablation of the paper's objective on the offline minilm recipe, honestly: several seeds,
each arm at both fusion input scales, every figure beside the raw-mix baseline (Σ p_i t_i into the prompt,
no model). Both arms are the paper's objective (``recipes.PAPER_METHOD``: no matching task, no residual
decoder), at 0.3.0's minilm settings (n = 8, 6,000 steps); distok's objective is measured by
``bench/fidelity.py``.

    python bench/ablation.py                      # 2 arms, 3 seeds, 2 runs at a time
    python bench/ablation.py --seeds 0 1 2 3 4 --steps 1500 --jobs 2

Seed 0 trains each arm at both fusion input scales (sum: t1 + t2, the paper's; mean: (t1 + t2)/2, the scale
eval feeds); the other seeds train each arm at its better scale by seed 0's KL on the versioned 30.
Each run is `distok train -r minilm-animals` then `distok eval --json` twice: on the versioned 30
(`recipes/eval/animals60-v1.json`) and on a held-out set of 60 generated with another seed (not tuned on).
Writes bench/results/ablation-minilm.json (every run) and bench/results/ablation-minilm.md (mean ± spread,
spread = sample standard deviation over seeds). Runs use one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER = ["train.objective=paper", "train.residual=false", "train.reweight=false", "train.n=8", "train.steps=6000"]
ARMS = {"full": PAPER, "no-cst": [*PAPER, "train.consistency=false"]}
SCALES = ("sum", "mean")
ARITIES = ("2", "3", "4+")


def sh(args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def one(work: Path, arm: str, scale: str, seed: int, steps: int | None, heldout: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = work / f"{arm}-{scale}-s{seed}"
    sets = sum((["--set", s] for s in [*ARMS[arm], f"train.fusion_input={scale}"]), [])
    cmd = [
        sys.executable,
        "-m",
        "distok_cli",
        "train",
        "-r",
        "minilm-animals",
        "-o",
        str(run),
        "--seed",
        str(seed),
        "-q",
        *sets,
    ]
    if steps:
        cmd += ["--steps", str(steps)]
    t0 = time.perf_counter()
    sh(cmd, env)
    took = time.perf_counter() - t0
    ev = [sys.executable, "-m", "distok_cli", "eval", str(run), "--json", "-q"]
    v1 = json.loads(sh([*ev, "-o", str(run / "eval-v1")], env))
    held = json.loads(sh([*ev, "--distributions", str(heldout), "-o", str(run / "eval-held")], env))
    print(
        f"{arm:7s} {scale:4s} seed {seed}: KL {v1['kl']:.3f} (raw mix {v1['baselines']['raw_mix']['kl']:.3f}), "
        f"held-out {held['kl']:.3f} (raw mix {held['baselines']['raw_mix']['kl']:.3f}), {took:.0f} s",
        flush=True,
    )
    return {"arm": arm, "scale": scale, "seed": seed, "train_seconds": round(took, 1), "v1": v1, "heldout": held}


def stat(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def table(runs: list[dict], key: str) -> list[str]:
    lines = [
        "| arm | fusion input | KL ↓ | arity 2 | arity 3 | arity 4+ | top-1 ↑ | outside / inside | vs raw mix |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [(a, s) for a in ARMS for s in SCALES if any(r["arm"] == a and r["scale"] == s for r in runs)]
    for arm, scale in groups:
        rs = [r[key] for r in runs if r["arm"] == arm and r["scale"] == scale]
        by = [stat([r["by_arity"][a]["kl"] for r in rs]) if rs[0]["by_arity"][a]["n"] else "—" for a in ARITIES]
        red = [1 - r["kl"] / r["baselines"]["raw_mix"]["kl"] for r in rs]
        lines.append(
            f"| {arm} | {scale} | {stat([r['kl'] for r in rs])} | {' | '.join(by)} | {stat([r['top1'] for r in rs])} | "
            f"{statistics.mean(r['kl_outside'] for r in rs):.3f} / {statistics.mean(r['kl_inside'] for r in rs):.3f} | "
            f"{stat([100 * x for x in red])} % |"
        )
    raw = runs[0][key]["baselines"]["raw_mix"]  # the baseline has no model: the same for every run
    by = [f"{raw['by_arity'][a]['kl']:.3f}" if raw["by_arity"][a]["n"] else "—" for a in ARITIES]
    lines.append(
        f"| raw mix (no model) | — | {raw['kl']:.3f} | {' | '.join(by)} | {raw['top1']:.3f} | "
        f"{raw['kl_outside']:.3f} / {raw['kl_inside']:.3f} | 0 % |"
    )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--arms", nargs="+", default=list(ARMS))
    ap.add_argument("--scales", nargs="+", default=list(SCALES))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from distok_cli.files import recipes
    from distok_cli.method import evaluation

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        heldout = work / "heldout-seed7.json"
        heldout.write_text(json.dumps(evaluation.make_eval_set(recipes.ANIMALS_60, n=60, seed=7)))
        # Phase 1: every arm at every input scale with the first seed; phase 2: the other seeds, each arm at
        # its best scale by phase 1's KL on the versioned 30 (the held-out set is never used to choose).
        first = [(a, s, args.seeds[0]) for a in args.arms for s in args.scales]
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(lambda p: one(work, *p, args.steps, heldout), first))
            best = {a: min((r for r in runs if r["arm"] == a), key=lambda r: r["v1"]["kl"])["scale"] for a in args.arms}
            rest = [(a, best[a], seed) for a in args.arms for seed in args.seeds[1:]]
            runs += list(pool.map(lambda p: one(work, *p, args.steps, heldout), rest))
    cfg = recipes.load("minilm-animals", PAPER)
    steps = args.steps or cfg.train.steps
    head = {
        "command": "python bench/ablation.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "best_scale": best,
        "machine": f"{os.cpu_count()}-core CPU, one torch thread per run",
        "steps": steps,
        "n": cfg.train.n,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation-minilm.json").write_text(json.dumps({**head, "runs": runs}, indent=1, sort_keys=True) + "\n")
    md = [
        f"# Consistency ablation, minilm-animals ({steps} steps, n = {cfg.train.n}, seeds {', '.join(map(str, args.seeds))})",
        "",
        f"`{head['command']}` on {head['date']} ({head['machine']}). Text-side estimator, T by the calibration rule "
        f"(T = {runs[0]['v1']['temperature']:.4g}). Mean ± sample std over seeds; 'vs raw mix' is the KL reduction.",
        "",
        f"Best fusion input scale by seed {args.seeds[0]}: " + ", ".join(f"{a} → {b}" for a, b in best.items()) + ".",
        "",
        "## The versioned 30 (`animals60-v1`)",
        "",
        *table(runs, "v1"),
        "",
        "## Held-out: 60 distributions generated with seed 7 (not used to pick the fusion scale; it was seen during the method search, bench/results/method-search-minilm.md)",
        "",
        *table(runs, "heldout"),
        "",
    ]
    (args.out / "ablation-minilm.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()

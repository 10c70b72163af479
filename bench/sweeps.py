"""How smooth distok's sweeps are, and whether the end classes move monotonically, for the default model.

    python bench/sweeps.py --seeds 0 1            # trains minilm-animals (the default recipe) per seed
    python bench/sweeps.py --runs RUN_A RUN_B     # or reuse trained runs

For each model, a fixed set of paths (chosen with a fixed RNG, the same for every model): 10 lines between
two classes and 5 lines between two distributions of the protocol's test split (``--steps 9``), 3
triangles (``--grid 5``), and 5 pairs of sampled tokens through the latent space, lerp and slerp. Each
sweep reports its smoothness (largest step in token space over the mean step: 1 is even) and, under the
recipe's text-side estimator, whether every end class's estimated share moves monotonically. Beside the
model, the trivial baseline: the same weight paths with the raw mix Σ p_i t_i as the token (no model), and
for latent pairs the straight line in token space between the same two tokens. Writes
``bench/results/sweeps-minilm.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def train(seed: int, work: Path) -> Path:
    run = work / f"minilm-s{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [
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
        ],
        check=True,
        env=env,
    )
    return run


def paths_for(classes: list[str]) -> dict[str, list]:
    from distok_cli.method.evaluation import protocol_set

    rng = np.random.default_rng(12345)
    pick = lambda k: [classes[i] for i in rng.choice(len(classes), k, replace=False)]  # noqa: E731
    dists = protocol_set(classes, "test")
    return {
        "class-line": [tuple(pick(2)) for _ in range(10)],
        "distribution-line": [(dists[2 * i], dists[2 * i + 1]) for i in range(5)],
        "triangle": [tuple(pick(3)) for _ in range(3)],
        "latent": [(int(a), int(b)) for a, b in rng.integers(0, 1000, size=(5, 2))],
    }


def baseline(s, ckpt):
    """The same sweep with each token's raw mix Σ p_i t_i (weights, triangle), or the straight token-space
    line between its ends (between tokens)."""
    from distok_cli.method import sweep as sw
    from distok_cli.method.evaluation import raw_mix

    if s.kind in ("weights", "triangle"):
        toks = [replace(t, vector=raw_mix(ckpt, t.source["distribution"])) for t in s.tokens]
    else:
        a, b = s.tokens[0].vector.astype(np.float64), s.tokens[-1].vector.astype(np.float64)
        n = len(s.tokens) - 1
        toks = [replace(t, vector=((1 - i / n) * a + i / n * b).astype(np.float32)) for i, t in enumerate(s.tokens)]
    return sw._finish(sw.Sweep(s.kind, toks, s.labels, s.interpolation, s.grid))


def measure(run: Path) -> list[dict]:
    import torch

    from distok_cli import api
    from distok_cli.backends.token_estimators import make_token_estimator
    from distok_cli.files import recipes
    from distok_cli.method.sweep import monotonic

    torch.set_num_threads(1)
    model = api.load(run)
    recipe = recipes.load("minilm-animals")
    est = make_token_estimator(recipe, "cpu", kind="text")

    def estimates(s):
        vecs = torch.tensor(np.stack([t.vector for t in s.tokens]))
        probs, _ = est(vecs)
        return [dict(zip(est.classes, map(float, p))) for p in probs]

    rows = []
    todo = paths_for(model.classes)
    sweeps = [("class-line", f"{a}:{b}", model.sweep(f"{a}:{b}", steps=9)) for a, b in todo["class-line"]]
    sweeps += [("distribution-line", "dists", model.sweep(a, b, steps=9)) for a, b in todo["distribution-line"]]
    sweeps += [("triangle", ":".join(c), model.sweep(":".join(c), grid=5)) for c in todo["triangle"]]
    for i, j in todo["latent"]:
        ta, tb = model.sample(1, seed=i)[0], model.sample(1, seed=j)[0]
        for slerp in (False, True):
            sweeps.append(
                (f"latent-{'slerp' if slerp else 'lerp'}", f"s{i}:s{j}", model.sweep(ta, tb, steps=9, slerp=slerp))
            )
    for family, name, s in sweeps:
        base = baseline(s, model.checkpoint)
        row = {"family": family, "name": name, "kind": s.kind}
        for arm, sweep in (("model", s), ("baseline", base)):
            mono = monotonic(sweep, estimates(sweep))
            row[arm] = {
                "max_over_mean": sweep.smoothness["max_over_mean"],
                "monotonic": mono["all"],
                "classes_monotonic": sum(v["monotonic"] for v in mono["classes"].values()),
                "classes": len(mono["classes"]),
            }
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--runs", nargs="*", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="distok-sweeps-"))
    t0 = time.perf_counter()
    runs = [Path(r) for r in args.runs]
    if not runs:
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = list(pool.map(lambda s: train(s, work), args.seeds))
    train_s = time.perf_counter() - t0
    results = {str(run): measure(run) for run in runs}
    families = list(dict.fromkeys(r["family"] for rows in results.values() for r in rows))
    lines = [
        f"# Sweeps on the default model (minilm-animals), {time.strftime('%Y-%m-%d')}",
        "",
        f"`python bench/sweeps.py --seeds {' '.join(map(str, args.seeds))}` ({len(runs)} models, trained in "
        f"{train_s / 60:.1f} min on {platform.machine()}, {os.cpu_count()} cores). Each family is the same paths on every "
        "model; figures are over all its sweeps and models. Smoothness: the largest step between neighbouring tokens "
        "in token space over the mean step (1 = evenly spaced). Monotonic: every end class's estimated share "
        "(text-side estimator, the recipe's T) moves one way along the path. Baseline: the raw mix Σ p_i t_i on "
        "the same weight paths (no model), or the straight token-space line between the same two tokens.",
        "",
        "| paths | sweeps | smoothness, median (max): model | baseline | monotonic sweeps: model | baseline | "
        "monotonic end classes: model | baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for fam in families:
        rows = [r for rows in results.values() for r in rows if r["family"] == fam]
        cell = {}
        for arm in ("model", "baseline"):
            sm = [r[arm]["max_over_mean"] for r in rows]
            mono = sum(r[arm]["monotonic"] for r in rows)
            cls_ok = sum(r[arm]["classes_monotonic"] for r in rows)
            cls_n = sum(r[arm]["classes"] for r in rows)
            cell[arm] = {
                "smooth_median": statistics.median(sm),
                "smooth_max": max(sm),
                "monotonic": mono,
                "sweeps": len(rows),
                "classes_monotonic": cls_ok,
                "classes": cls_n,
            }
        summary[fam] = cell
        m, b = cell["model"], cell["baseline"]
        lines.append(
            f"| {fam} | {len(rows)} | {m['smooth_median']:.3f} ({m['smooth_max']:.3f}) | {b['smooth_median']:.3f} "
            f"({b['smooth_max']:.3f}) | {m['monotonic']}/{len(rows)} | {b['monotonic']}/{len(rows)} | "
            f"{m['classes_monotonic']}/{m['classes']} | {b['classes_monotonic']}/{b['classes']} |"
        )
    out = ROOT / "bench" / "results"
    (out / "sweeps-minilm.json").write_text(
        json.dumps(
            {"date": time.strftime("%Y-%m-%d"), "seeds": args.seeds, "summary": summary, "runs": results}, indent=1
        )
        + "\n"
    )
    (out / "sweeps-minilm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Open sampling, measured (issue 30, part 4): what tokens from random latents read as.

For a trained model and each prior (gaussian, laplace, cauchy; `distok sample`'s draw z = mean + std · ε in
the latents' trained scale), N tokens are estimated with the text estimator of the model's recipe, and:

* coverage: the share of the K classes that are the top-1 estimate of at least one token;
* entropy: the mean entropy (nats) of the estimates (log K is uniform; a one-class token is near 0);
* top share: the mean largest class probability (the paper's novelty test admits a concept below τ = 0.85);
* spread: the mean L2 distance from each token to its nearest other sampled token, ÷ the mean token norm.

Beside them, the reference the paper's sampling aims at: latents of the training distribution itself,
E_dis(Σ p_i t_i) for N user-like distributions (1–4 classes, Dirichlet(1) weights), decoded by the same
latent path (``skip(z) + D_tok(z)``), and the raw mixes Σ p_i t_i themselves.

    python bench/sampling.py RUN [RUN ...] --n 200      # writes bench/results/sampling-minilm.{md,json}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def figures(tokens: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    k = probs.shape[1]
    top = probs.argmax(1)
    ent = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(1)
    d = np.linalg.norm(tokens[:, None, :] - tokens[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return {
        "coverage": len(set(top.tolist())) / k,
        "entropy": float(ent.mean()),
        "top_share": float(probs.max(1).mean()),
        "spread": float(d.min(1).mean() / np.linalg.norm(tokens, axis=1).mean()),
    }


def user_like(classes: list[str], n: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 5))
        names = rng.choice(len(classes), size=k, replace=False)
        w = rng.dirichlet(np.ones(k))
        out.append({classes[i]: float(x) for i, x in zip(names, w)})
    return out


def measure(run: Path, n: int) -> dict:
    import torch

    from distok_cli import api
    from distok_cli.method import generate

    model = api.load(run)
    ckpt, est = model.checkpoint, model.estimator("cpu", "float32")

    def read(vectors: np.ndarray) -> np.ndarray:
        probs, _ = est(torch.as_tensor(vectors, dtype=torch.float32))
        return probs.double().numpy()

    rows = {}
    for prior in ("gaussian", "laplace", "cauchy"):
        toks = np.stack([t.vector for t in model.sample(n, prior=prior, seed=0)])
        rows[prior] = figures(toks, read(toks))
    dists = user_like(ckpt.classes, n, seed=7)
    mixes = np.stack(
        [
            generate.weighted_sum([(c, w, ckpt.class_embeddings[ckpt.classes.index(c)]) for c, w in p.items()])
            for p in dists
        ]
    ).astype(np.float32)
    z = ckpt.encode_inputs(mixes)
    latent_path = np.stack([ckpt.decode(z[i : i + 1])[0] for i in range(len(z))]).astype(np.float32)
    rows["training latents"] = figures(latent_path, read(latent_path))
    rows["raw mixes"] = figures(mixes, read(mixes))
    return {
        "run": str(run),
        "classes": len(ckpt.classes),
        "estimator": est.name,
        "temperature": est.temperature,
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    results = [measure(r, args.n) for r in args.runs]
    head = {
        "command": "python bench/sampling.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core CPU",
        "n": args.n,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sampling-minilm.json").write_text(
        json.dumps({**head, "results": results}, indent=1, sort_keys=True) + "\n"
    )
    names = list(results[0]["rows"])
    md = [
        f"# Open sampling, {len(results)} model(s)",
        "",
        f"`{head['command']}` on {head['date']} ({head['machine']}). {args.n} tokens per row, read by the text estimator "
        f'of the model\'s recipe (`{results[0]["estimator"]}`, T = {results[0]["temperature"]:g}, "a photo of a <>"). '
        f"Uniform entropy: log {results[0]['classes']} = {math.log(results[0]['classes']):.2f} nats. Mean over models"
        + (f" ({len(results)})" if len(results) > 1 else "")
        + ".",
        "",
        "| latents | class coverage by top-1 ↑ | entropy of the estimate (nats) | largest class share | nearest-neighbour distance ÷ token norm |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        vals = {
            k: np.mean([r["rows"][name][k] for r in results]) for k in ("coverage", "entropy", "top_share", "spread")
        }
        md.append(
            f"| {name} | {vals['coverage']:.3f} | {vals['entropy']:.3f} | {vals['top_share']:.3f} | {vals['spread']:.3f} |"
        )
    (args.out / "sampling-minilm.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""``distok eval``: the paper's distribution-consistency metric on a fixed, versioned set of distributions.

For each of 30 weighted class distributions p: token = D_tok(E_dis(Σ p_i t_i)); q = the estimator's class
distribution of that token; report KL(p ‖ q) (the paper's metric: 0.0602 full, 0.0732 without L_cst on
Kandinsky + BLIP), JS(p, q), top-1 agreement (argmax p = argmax q) and the cosine between the token and its
nearest class embedding t_i. The set is ``recipes/eval/<classset>-v1.json`` when the run's classes are
that class set, else generated from the run's classes by :func:`make_eval_set` (same algorithm, seed 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import distributions as dists
from .errors import BadInput

EVAL_VERSION = "v1"


def make_eval_set(classes: list[str], n: int = 30, seed: int = 0) -> list[dict[str, float]]:
    """Algorithm v1: per item, k ∈ {2, 3, 4} classes without replacement, Dirichlet(1) weights sorted
    descending, rounded to 2 decimals with at least 0.05 each, the rounding error given to the largest."""
    if len(classes) < 4:
        raise BadInput("an evaluation set needs at least 4 classes")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 5))
        names = [classes[i] for i in rng.choice(len(classes), size=k, replace=False)]
        w = np.sort(rng.dirichlet(np.ones(k)))[::-1]
        w = np.maximum(np.round(w, 2), 0.05)
        w[0] += 1.0 - w.sum()
        out.append({c: round(float(x), 2) for c, x in zip(names, w)})
    return out


def eval_set_for(classes: list[str]) -> tuple[str, list[dict[str, float]]]:
    from .recipes import CLASS_SETS, recipe_dirs

    for name, members in CLASS_SETS.items():
        if list(members) == list(classes):
            for d in recipe_dirs():
                p = d / "eval" / f"{name}-{EVAL_VERSION}.json"
                if p.is_file():
                    data = json.loads(p.read_text())
                    return f"{name}-{EVAL_VERSION}", data["distributions"]
    return f"generated-{EVAL_VERSION}-seed0", make_eval_set(classes)


def evaluate(ckpt: Any, estimator: Any, progress: Any = None, batch: int = 8) -> dict[str, Any]:
    """Item i is estimated with seed i, ``batch`` tokens per estimator call (one batch of renders)."""
    import torch

    from .generate import encode

    name, items = eval_set_for(ckpt.classes)
    T = ckpt.class_embeddings.astype(np.float64)
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True)
    inputs = [{c: v / sum(p.values()) for c, v in p.items()} for p in items]
    vectors = np.stack([encode(ckpt, p).vector for p in inputs])
    probs = []
    for i in range(0, len(inputs), batch):
        part, _ = estimator(torch.as_tensor(vectors[i : i + batch]), list(range(i, min(i + batch, len(inputs)))))
        probs.append(part.double())
        if progress is not None:
            progress.advance(len(part))
    rows = []
    for p, prob, v in zip(inputs, torch.cat(probs), vectors.astype(np.float64)):
        q = {c: float(x) for c, x in zip(ckpt.classes, prob / prob.sum())}
        cos = Tn @ (v / np.linalg.norm(v))
        rows.append({
            "input": p, "estimate": q, "kl": dists.kl(p, q), "js": dists.js(p, q),
            "top1": dists.top(p, 1)[0][0] == dists.top(q, 1)[0][0],
            "nearest_class": ckpt.classes[int(cos.argmax())], "nearest_cosine": float(cos.max()),
        })
    return {
        "eval_set": name,
        "estimator": estimator.name,
        "model": ckpt.model_ref(),
        "n": len(rows),
        "kl": float(np.mean([r["kl"] for r in rows])),
        "js": float(np.mean([r["js"] for r in rows])),
        "top1": float(np.mean([r["top1"] for r in rows])),
        "nearest_cosine": float(np.mean([r["nearest_cosine"] for r in rows])),
        "items": rows,
    }


def markdown(report: dict[str, Any], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"- model: `{report['model']['hash'][:19]}` (recipe `{report['model']['recipe']}`, step {report['model']['step']})",
        f"- estimator: `{report['estimator']}`; evaluation set: `{report['eval_set']}` ({report['n']} distributions)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| KL(input ‖ estimate), mean | {report['kl']:.4f} |",
        f"| JS(input, estimate), mean | {report['js']:.4f} |",
        f"| top-1 agreement | {report['top1']:.3f} |",
        f"| cosine(token, nearest class t_i), mean | {report['nearest_cosine']:.4f} |",
        "",
        "| # | input | estimate (top 3) | KL | JS |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["items"]):
        inp = ", ".join(f"{c} {p:.2f}" for c, p in dists.top(r["input"], 4))
        est = ", ".join(f"{c} {p:.2f}" for c, p in dists.top(r["estimate"], 3))
        lines.append(f"| {i} | {inp} | {est} | {r['kl']:.3f} | {r['js']:.3f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path, title: str) -> list[str]:
    from .plots import bar_pairs
    from .tokenfile import atomic_write

    panels = [(f"#{i}: KL {r['kl']:.3f}", r["input"], r["estimate"]) for i, r in enumerate(report["items"][:4])]
    files = {
        "eval.json": json.dumps(report, sort_keys=True, indent=1).encode(),
        "eval.md": markdown(report, title).encode(),
        "eval.png": bar_pairs(panels, ("input", "estimate")),
    }
    written = []
    for name, data in files.items():
        atomic_write(out_dir / name, data)
        written.append(str(out_dir / name))
    return written

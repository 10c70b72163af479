"""Summaries of tokens and token pairs as plain dicts (the ``--json`` output) and as rich renderables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import distributions as dists
from .tokenfile import Token


def stats(vec: np.ndarray) -> dict[str, float]:
    v = np.asarray(vec, dtype=np.float64)
    return {
        "norm": float(np.linalg.norm(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "std": float(v.std()),
    }


def describe(token: Token) -> dict[str, Any]:
    """Everything ``inspect --json`` prints for one token."""
    return {
        "path": token.path,
        "id": token.id,
        "kind": "textual-inversion" if token.plain else "distok",
        "title": token.title,
        "dim": token.dim,
        "token_space": token.space.to_json() if token.space else None,
        "stats": stats(token.vector),
        "source": token.source,
        "estimate": token.estimate,
        "model": token.model,
        "tool_version": token.tool_version or None,
    }


def source_distribution(token: Token) -> dict[str, float] | None:
    if token.source and isinstance(token.source.get("distribution"), dict):
        return token.source["distribution"]
    return None


def estimate_distribution(token: Token) -> dict[str, float] | None:
    if token.estimate and isinstance(token.estimate.get("distribution"), dict):
        return token.estimate["distribution"]
    return None


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 or nb == 0:
        return 0.0
    return float(a64 @ b64 / (na * nb))


def _deltas(p: dict[str, float] | None, q: dict[str, float] | None) -> dict[str, Any] | None:
    if p is None or q is None:
        return None
    names = sorted(set(p) | set(q))
    return {
        "js": dists.js(p, q),
        "per_class": {n: q.get(n, 0.0) - p.get(n, 0.0) for n in names},
    }


def compare(a: Token, b: Token) -> dict[str, Any]:
    """What ``diff A B`` reports (deltas are B minus A)."""
    if a.dim != b.dim:
        from .errors import BadInput

        raise BadInput(f"cannot compare tokens of different dimension ({a.dim} vs {b.dim})")
    na, nb = float(np.linalg.norm(a.vector)), float(np.linalg.norm(b.vector))
    out: dict[str, Any] = {
        "a": {"path": a.path, "id": a.id},
        "b": {"path": b.path, "id": b.id},
        "same_token_space": (a.space == b.space) if (a.space and b.space) else None,
        "cosine": cosine(a.vector, b.vector),
        "l2": float(np.linalg.norm(np.asarray(a.vector, np.float64) - np.asarray(b.vector, np.float64))),
        "norm_ratio": (nb / na) if na > 0 else None,
        "latent_distance": None,
        "source": _deltas(source_distribution(a), source_distribution(b)),
        "estimate": _deltas(estimate_distribution(a), estimate_distribution(b)),
    }
    za = a.source.get("z") if a.source else None
    zb = b.source.get("z") if b.source else None
    if isinstance(za, list) and isinstance(zb, list) and len(za) == len(zb):
        out["latent_distance"] = math.sqrt(sum((x - y) ** 2 for x, y in zip(za, zb)))
    return out


# ------------------------------------------------------------------------------------------ rich views


def bars(dist: dict[str, float], width: int = 30, limit: int = 12) -> Any:
    from rich.table import Table

    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right")
    table.add_column()
    table.add_column(justify="right")
    items = dists.top(dist, limit)
    for name, p in items:
        table.add_row(name, "█" * round(p * width) or "▏", f"{p:.3f}")
    rest = len(dist) - len(items)
    if rest > 0:
        table.add_row("…", f"{rest} more", f"{1 - sum(p for _, p in items):.3f}")
    return table


def token_panel(token: Token, neighbors: list[tuple[str, float]] | None = None) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    d = describe(token)
    s = d["stats"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", justify="right")
    grid.add_column()
    grid.add_row("id", token.id)
    grid.add_row("title", str(token.title))
    if token.space:
        grid.add_row(
            "token space",
            f"{token.space.encoder} (dim {token.space.dim}, fingerprint {token.space.fingerprint[:23]})",
        )
    else:
        grid.add_row("token space", f"unknown: plain textual-inversion file (dim {token.dim}), no provenance")
    grid.add_row(
        "vector", f"norm {s['norm']:.4f}  min {s['min']:.4f}  max {s['max']:.4f}  mean {s['mean']:.5f}"
    )
    src = token.source
    if src:
        line = src["kind"]
        if src["kind"] == "latent":
            line += f": {src['prior']} prior, scale {src.get('scale')}, seed {src.get('seed')}, index {src.get('index')}"
        grid.add_row("source", line)
        if source_distribution(token):
            grid.add_row("", bars(source_distribution(token) or {}))
        for p in src.get("parents") or []:
            who = p.get("class") or p.get("title") or p.get("id", "?")
            grid.add_row("parent", f"{p['weight']:.3f} × {who}" + (f" ({p['id'][:19]})" if p.get("id") else ""))
    est = token.estimate
    if est:
        grid.add_row("estimate", f"{est['estimator']}" + (f", {len(est.get('seeds') or [])} seeds" if est.get("seeds") else ""))
        grid.add_row("", bars(est["distribution"]))
        if est.get("kl") is not None:
            grid.add_row("divergence", f"KL(source‖estimate) {est['kl']:.4f}  JS {est.get('js', float('nan')):.4f}")
    if token.model:
        grid.add_row("model", f"{token.model.get('hash', '?')[:19]}  recipe {token.model.get('recipe', '?')}")
    if token.tool_version:
        grid.add_row("written by", f"distok {token.tool_version}")
    if neighbors is not None:
        grid.add_row("neighbours", ", ".join(f"{t} ({c:.3f})" for t, c in neighbors))
    return Panel(grid, title=str(token.path), title_align="left")


def diff_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", justify="right")
    t.add_column()
    t.add_row("A", f"{result['a']['path']} ({result['a']['id'][:19]})")
    t.add_row("B", f"{result['b']['path']} ({result['b']['id'][:19]})")
    t.add_row("cosine", f"{result['cosine']:.4f}")
    t.add_row("L2", f"{result['l2']:.4f}")
    if result["norm_ratio"] is not None:
        t.add_row("norm B/A", f"{result['norm_ratio']:.4f}")
    if result["latent_distance"] is not None:
        t.add_row("latent distance", f"{result['latent_distance']:.4f}")
    if result["same_token_space"] is False:
        t.add_row("warning", "the tokens come from different token spaces")
    for key in ("source", "estimate"):
        part = result[key]
        if part:
            t.add_row(f"{key} JS", f"{part['js']:.4f}")
            moved = sorted(part["per_class"].items(), key=lambda kv: -abs(kv[1]))[:8]
            t.add_row("", "  ".join(f"{n} {v:+.3f}" for n, v in moved))
    return t

"""Summaries of tokens and token pairs as plain dicts: what ``inspect --json`` and ``diff --json`` print
(``distok_cli.cli.views`` draws them for people)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from distok_cli.files import distributions as dists
from distok_cli.files.tokenfile import Token


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
    out = {
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
        "export": token.exported,
        "tool_version": token.tool_version or None,
    }
    if token.layout:  # a token with parts: each part's width and statistics too
        out["parts"] = {name: {"dim": int(v.shape[-1]), **stats(v)} for name, v in token.part_vectors().items()}
    return out


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
    if a.dim != b.dim or a.layout != b.layout:
        from distok_cli.errors import BadInput
        from distok_cli.files.space import describe_layout

        if a.layout or b.layout:
            raise BadInput(
                f"cannot compare tokens of different token spaces ({describe_layout(a.layout, a.dim)} vs "
                f"{describe_layout(b.layout, b.dim)})"
            )
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
    if a.layout:  # each part compared on its own too
        out["parts"] = {
            name: {
                "cosine": cosine(va, vb),
                "l2": float(np.linalg.norm(np.asarray(va, np.float64) - np.asarray(vb, np.float64))),
            }
            for (name, va), vb in zip(a.part_vectors().items(), b.part_vectors().values())
        }
    za = a.source.get("z") if a.source else None
    zb = b.source.get("z") if b.source else None
    if isinstance(za, list) and isinstance(zb, list) and len(za) == len(zb):
        out["latent_distance"] = math.sqrt(sum((x - y) ** 2 for x, y in zip(za, zb)))
    return out


def sweep_text(token: Token) -> str | None:
    """ "weights sweep, token 2 of 4 (t 0.33, lerp)": where on a sweep the token lies (None off a sweep)."""
    rec = (token.source or {}).get("sweep")
    if not isinstance(rec, dict):
        return None
    where = f"point {tuple(rec['point'])}" if "point" in rec else f"t {rec.get('t', 0):.3g}"
    return f"{rec['path']} sweep, token {rec['index'] + 1} of {rec['count']} ({where}, {rec['interpolation']})"

"""Sweeps: tokens along a path through a model's inputs, its latent space, or token space (numpy only).

Four paths, all with ``t = i / (steps − 1)``:

* **weights**: between two distributions, ``p_t = (1 − t)·A + t·B``, each encoded like ``distok encode``;
  ``pig:sheep`` is the line from all pig to all sheep;
* **triangle**: every mixture of three classes with weights ``(i, j, k) / (g − 1)``, ``i + j + k = g − 1``,
  row by row from the first class's corner (``g (g + 1) / 2`` tokens for ``--grid g``);
* **latent**: between two tokens of the model itself (both record their latent ``z`` and the model's
  hash): ``z_t`` = lerp (or slerp) of ``z_a`` and ``z_b``, and ``token_t = decode(z_t) + (1 − t)·(a −
  decode(z_a)) + t·(b − decode(z_b))``. The two correction terms make the ends exactly ``a`` and ``b``;
  for sampled tokens (which are ``decode(z)``) they are zero, and the path is the latent path itself;
* **token**: between any two tokens of one token space: lerp of the vectors, or slerp of each part.

Every token's source records where it lies (``source.sweep``: path, index, count, ``t`` or grid point,
interpolation, ends). Smoothness is measured in token space: the largest step between neighbours against
the mean step (1 = evenly spaced).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from distok_cli.errors import BadInput
from distok_cli.files import distributions as dists
from distok_cli.files.checkpoint import Checkpoint
from distok_cli.files.space import check_compatible, describe_layout, split
from distok_cli.files.tokenfile import TOKEN_SUFFIXES, Token

#: Most tokens one line sweep writes (``--steps``), and the largest triangle (``--grid``: 820 tokens).
MAX_STEPS = 1000
MAX_GRID = 40


@dataclass
class Sweep:
    """Tokens in path order, a label for each (weights or ``t``), the path's kind and its smoothness."""

    kind: str
    tokens: list[Token]
    labels: list[str]
    interpolation: str = "lerp"
    grid: int | None = None
    smoothness: dict[str, Any] = field(default_factory=dict)
    monotonic: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.kind,
            "interpolation": self.interpolation,
            "count": len(self.tokens),
            "grid": self.grid,
            "labels": self.labels,
            "smoothness": self.smoothness,
            "monotonic": self.monotonic,
        }


# ------------------------------------------------------------------------------------------ parsing


def corners(text: str) -> list[str] | None:
    """``pig:sheep`` or ``pig:sheep:snake`` (class names joined by ':', no weights) → the names; else None."""
    if "," in text or ":" not in text or text.endswith(TOKEN_SUFFIXES):
        return None
    names = [n.strip() for n in text.split(":")]
    if any(not n or re.fullmatch(r"[-+0-9.eE]+|nan|inf", n.lower()) for n in names):
        return None
    return names


def check_steps(steps: int) -> int:
    if not 2 <= steps <= MAX_STEPS:
        raise BadInput(f"--steps must be between 2 and {MAX_STEPS}, got {steps}")
    return steps


def check_grid(grid: int) -> int:
    if not 2 <= grid <= MAX_GRID:
        raise BadInput(
            f"--grid must be between 2 and {MAX_GRID} (a triangle of {MAX_GRID * (MAX_GRID + 1) // 2} tokens), got {grid}"
        )
    return grid


def check_classes(ckpt: Checkpoint, names: list[str]) -> None:
    """Refuse a class the model does not know, naming the nearest ones."""
    for n in names:
        if n not in ckpt.classes:
            raise BadInput(
                f"unknown class {n!r}{dists.suggest(n, ckpt.classes)} (the model knows {len(ckpt.classes)} classes)"
            )


def _label(p: dict[str, float]) -> str:
    return " ".join(f"{c} {w:.3g}" for c, w in p.items())


def _line(a: dict[str, float], b: dict[str, float], t: float) -> dict[str, float]:
    names = list(dict.fromkeys([*a, *b]))
    out = {c: (1 - t) * a.get(c, 0.0) + t * b.get(c, 0.0) for c in names}
    return {c: w for c, w in out.items() if w > 0}


# ------------------------------------------------------------------------------------------- sweeps


def weights(ckpt: Checkpoint, a: dict[str, float], b: dict[str, float], steps: int) -> Sweep:
    """Tokens of ``(1 − t)·a + t·b`` (both normalised) for ``steps`` evenly spaced t."""
    from distok_cli.method.generate import encode

    check_steps(steps)
    a, b = _normalised(ckpt, a), _normalised(ckpt, b)
    tokens, labels = [], []
    for i in range(steps):
        t = i / (steps - 1)
        p = _line(a, b, t)
        tok = encode(ckpt, p)
        record = {"path": "weights", "index": i, "count": steps, "t": t, "interpolation": "lerp", "ends": [a, b]}
        tokens.append(replace(tok, source={**tok.source, "sweep": record}))
        labels.append(_label(p))
    return _finish(Sweep("weights", tokens, labels))


def triangle(ckpt: Checkpoint, names: list[str], grid: int) -> Sweep:
    """Every mixture of three classes on a ``grid``-point edge, row by row from the first class's corner."""
    from distok_cli.method.generate import encode

    check_grid(grid)
    if len(names) != 3 or len(set(names)) != 3:
        raise BadInput(f"a triangle needs three distinct classes (a:b:c), got {':'.join(names)}")
    check_classes(ckpt, names)
    m = grid - 1
    points = [(m - r, r - k, k) for r in range(grid) for k in range(r + 1)]
    tokens, labels = [], []
    for idx, point in enumerate(points):
        p = {c: n / m for c, n in zip(names, point) if n}
        tok = encode(ckpt, p)
        record = {
            "path": "triangle",
            "index": idx,
            "count": len(points),
            "point": list(point),
            "grid": grid,
            "interpolation": "lerp",
            "ends": [{c: 1.0} for c in names],
        }
        tokens.append(replace(tok, source={**tok.source, "sweep": record}))
        labels.append(_label(p))
    return _finish(Sweep("triangle", tokens, labels, grid=grid))


def between(ckpt: Checkpoint | None, a: Token, b: Token, steps: int, slerp: bool = False) -> Sweep:
    """Tokens from ``a`` to ``b``: through ``ckpt``'s latent space when both come from it (and record their
    latent), else through token space (the two must share one)."""
    check_steps(steps)
    interp = "slerp" if slerp else "lerp"
    if a.layout != b.layout or a.dim != b.dim:
        raise BadInput(
            f"{b.path or b.short_id}: token has {describe_layout(b.layout, b.dim)}, "
            f"{a.path or a.short_id} has {describe_layout(a.layout, a.dim)}: no path joins different token spaces"
        )
    if a.space is not None and b.space is not None and not a.space.compatible(b.space):
        raise BadInput(
            f"{b.path or b.short_id} was made for {b.space.encoder}, {a.path or a.short_id} for "
            f"{a.space.encoder}: no path joins different token spaces"
        )
    if ckpt is not None:
        for t in (a, b):
            check_compatible(t, ckpt.space)
    kind = "latent" if ckpt is not None and _from(ckpt, a) and _from(ckpt, b) else "token"
    tokens, labels = [], []
    if kind == "latent":
        assert ckpt is not None
        za, zb = (np.asarray(t.source["z"], np.float64) for t in (a, b))  # type: ignore[index]
        da, db = (ckpt.decode(z[None].astype(np.float32))[0].astype(np.float64) for z in (za, zb))
        ra, rb = np.asarray(a.vector, np.float64) - da, np.asarray(b.vector, np.float64) - db
    for i in range(steps):
        t = i / (steps - 1)
        z_t = None
        if kind == "latent":
            z_t = _slerp(za, zb, t) if slerp else (1 - t) * za + t * zb
            vec = ckpt.decode(z_t[None].astype(np.float32))[0].astype(np.float64) + (1 - t) * ra + t * rb  # type: ignore[union-attr]
        else:
            vec = _interpolate(a, b, t, slerp)
        vec = vec.astype(np.float32)
        if i == 0:
            vec = np.asarray(a.vector, np.float32)
        elif i == steps - 1:
            vec = np.asarray(b.vector, np.float32)
        tokens.append(_token_between(ckpt, a, b, t, vec, z_t, kind, interp, i, steps))
        labels.append(f"t {t:.3g}")
    return _finish(Sweep(kind, tokens, labels, interpolation=interp))


def _from(ckpt: Checkpoint, t: Token) -> bool:
    """Whether ``t`` was made by ``ckpt`` and records its latent."""
    return bool(
        t.model
        and t.model.get("hash") == ckpt.hash
        and t.source
        and isinstance(t.source.get("z"), list)
        and len(t.source["z"]) == ckpt.latent_dim
    )


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation, norms interpolated linearly (lerp when the two are (anti)parallel or zero)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    ua, ub = a / na, b / nb
    omega = math.acos(float(np.clip(ua @ ub, -1.0, 1.0)))
    if omega < 1e-6 or math.pi - omega < 1e-6:
        return (1 - t) * a + t * b
    s = math.sin(omega)
    u = (math.sin((1 - t) * omega) * ua + math.sin(t * omega) * ub) / s
    return u * ((1 - t) * na + t * nb)


def _interpolate(a: Token, b: Token, t: float, slerp: bool) -> np.ndarray:
    va, vb = np.asarray(a.vector, np.float64), np.asarray(b.vector, np.float64)
    if not slerp:
        return (1 - t) * va + t * vb
    if not a.layout:
        return _slerp(va, vb, t)
    pa, pb = split(va, a.layout), split(vb, a.layout)
    return np.concatenate([_slerp(pa[n], pb[n], t) for n in pa])  # each encoder's part on its own sphere


def _token_between(
    ckpt: Checkpoint | None,
    a: Token,
    b: Token,
    t: float,
    vec: np.ndarray,
    z_t: np.ndarray | None,
    kind: str,
    interp: str,
    i: int,
    steps: int,
) -> Token:
    from distok_cli.files.summary import source_distribution

    parents = [{"id": x.id, "title": x.title or x.short_id, "weight": w} for x, w in ((a, 1 - t), (b, t))]
    source: dict[str, Any] = {
        "kind": "composition",
        "parents": parents,
        "sweep": {"path": kind, "index": i, "count": steps, "t": t, "interpolation": interp, "ends": [a.id, b.id]},
    }
    pa, pb = source_distribution(a), source_distribution(b)
    if pa is not None and pb is not None and interp == "lerp":
        source["distribution"] = dists.check(_line(dists.check(pa), dists.check(pb), t))
    if z_t is not None:
        source["z"] = [float(x) for x in z_t]
    title = f"{(a.title or a.short_id)[:24]}-to-{(b.title or b.short_id)[:24]}-{i:03d}"
    space = a.space if a.space is not None else (ckpt.space if ckpt is not None else None)
    return Token(
        vector=vec,
        space=space,
        source=source,
        model=ckpt.model_ref() if kind == "latent" and ckpt else None,
        title=title,
        plain_layout=a.layout if space is None else (),
    )


def _normalised(ckpt: Checkpoint, p: dict[str, float]) -> dict[str, float]:
    names = [n for n in p if not n.endswith(TOKEN_SUFFIXES)]
    if len(names) != len(p):
        raise BadInput("a weights sweep runs between class distributions; give two token files to sweep between tokens")
    check_classes(ckpt, names)
    total = sum(p.values())
    if not total > 0 or not math.isfinite(total):
        raise BadInput("weights must sum to a positive number")
    return {c: w / total for c, w in p.items() if w > 0}


# ----------------------------------------------------------------------------------------- smoothness


def _pairs(s: Sweep) -> list[tuple[int, int]]:
    if s.kind != "triangle":
        return [(i, i + 1) for i in range(len(s.tokens) - 1)]
    index = {tuple(t.source["sweep"]["point"]): i for i, t in enumerate(s.tokens)}  # type: ignore[index]
    out = []
    for (x, y, z), i in index.items():  # each grid point to its neighbours one unit away (each pair once)
        for nb in ((x - 1, y + 1, z), (x - 1, y, z + 1), (x, y - 1, z + 1)):
            if nb in index:
                out.append((i, index[nb]))
    return out


def _finish(s: Sweep) -> Sweep:
    vecs = np.stack([np.asarray(t.vector, np.float64) for t in s.tokens])
    d = [float(np.linalg.norm(vecs[j] - vecs[i])) for i, j in _pairs(s)]
    mean = sum(d) / len(d)
    s.smoothness = {
        "max_step": max(d),
        "mean_step": mean,
        "max_over_mean": max(d) / mean if mean > 0 else None,
        "steps_measured": len(d),
    }
    return s


def monotonic(s: Sweep, estimates: list[dict[str, float]]) -> dict[str, Any]:
    """Whether the estimated share of each end class moves one way along the path (non-strictly), in the
    direction its weight moves: per class ``{"direction", "monotonic"}``, and ``all``. End classes: the
    classes whose weight differs between the ends (weights), each corner (triangle: along the three
    edges), or the top class of each end's estimate (tokens)."""
    if s.kind == "triangle":
        return _triangle_monotonic(s, estimates)
    first, last = estimates[0], estimates[-1]
    if s.kind == "weights":
        a, b = s.tokens[0].source["distribution"], s.tokens[-1].source["distribution"]  # type: ignore[index]
        ends = [c for c in dict.fromkeys([*a, *b]) if abs(a.get(c, 0.0) - b.get(c, 0.0)) > 1e-12]
        want = {c: 1 if b.get(c, 0.0) > a.get(c, 0.0) else -1 for c in ends}
    else:
        ta, tb = dists.top(first, 1)[0][0], dists.top(last, 1)[0][0]
        want = {ta: -1} if ta == tb else {ta: -1, tb: 1}
    out = {c: _moves(c, sign, estimates) for c, sign in want.items()}
    return {"classes": out, "all": all(v["monotonic"] for v in out.values())}


def _moves(c: str, sign: int, estimates: list[dict[str, float]]) -> dict[str, Any]:
    shares = [e.get(c, 0.0) for e in estimates]
    ok = all(sign * (y - x) >= -1e-12 for x, y in zip(shares, shares[1:]))
    return {"direction": "up" if sign > 0 else "down", "monotonic": ok, "shares": shares}


def _triangle_monotonic(s: Sweep, estimates: list[dict[str, float]]) -> dict[str, Any]:
    points = [tuple(t.source["sweep"]["point"]) for t in s.tokens]  # type: ignore[index]
    names = [next(iter(e)) for e in s.tokens[0].source["sweep"]["ends"]]  # type: ignore[index]
    out = {}
    for k, c in enumerate(names):  # along each edge that leaves corner c, c's share must fall
        for other in (j for j in range(3) if j != k):
            edge = sorted((p for p in points if p[3 - k - other] == 0), key=lambda p: -p[k])
            res = _moves(c, -1, [estimates[points.index(p)] for p in edge])
            out[f"{c}->{names[other]}"] = res
    return {"classes": out, "all": all(v["monotonic"] for v in out.values())}

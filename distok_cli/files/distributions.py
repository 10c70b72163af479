"""Class distributions: validation, parsing and divergences. Pure Python (no numpy, no torch).

A distribution is a ``dict[str, float]`` over class names. Stored distributions MUST have finite,
non-negative weights that sum to 1 within :data:`SUM_TOLERANCE`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping

from distok_cli.errors import BadInput

#: Largest allowed ``|sum(p) - 1|`` for a stored distribution.
SUM_TOLERANCE = 1e-6
#: Probabilities are clipped to this before logarithms (KL of a zero estimate stays finite).
EPS = 1e-8


def check(dist: object, what: str = "distribution") -> dict[str, float]:
    """Validate a stored distribution and return it as ``dict[str, float]``.

    Raises:
        BadInput: empty, non-string names, non-numeric/negative/NaN/Inf weights, or a sum off 1.
    """
    if not isinstance(dist, Mapping) or not dist:
        raise BadInput(f"{what} must be a non-empty mapping of class name to probability")
    out: dict[str, float] = {}
    for name, value in dist.items():
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{what} has an empty or non-string class name")
        out[name] = weight(name, value, f"{what}: ")
    total = sum(out.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise BadInput(f"{what} sums to {total:.9g}, not 1 (tolerance {SUM_TOLERANCE:g})")
    return out


#: A weight as typed: a plain decimal (``0.5``, ``.5``, ``5e-1``); Python's ``1_0`` or ``0x1`` are not.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def weight(name: str, value: object, prefix: str = "") -> float:
    """``value`` as a weight: a number (not a bool), finite as a float and not negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{prefix}weight of {name!r} is not a number")
    try:
        v = float(value)
    except OverflowError:  # an integer beyond a double
        v = math.inf
    if not math.isfinite(v):
        raise BadInput(f"{prefix}weight of {name!r} is not finite")
    if v < 0:
        raise BadInput(f"{prefix}weight of {name!r} is negative ({v:g})")
    return v


def parse_weight(name: str, text: str) -> float:
    """A weight as typed on the command line (see :data:`_NUMBER`)."""
    if not _NUMBER.fullmatch(text):
        raise BadInput(f"weight of {name!r} is not a number: {text[:40]!r}")
    return weight(name, float(text))


def parse_spec(text: str) -> dict[str, float]:
    """Parse ``pig:0.55,sheep:0.25,snake:0.20`` into raw (not yet normalised) weights.

    A component without ``:weight`` gets weight 1. Repeated names are an error.
    """
    if not text.strip():
        raise BadInput("empty distribution")
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise BadInput(f"empty component in {text!r}")
        name, sep, weight = part.rpartition(":")
        if not sep:
            name, weight = part, "1"
        name = name.strip()
        if not name:
            raise BadInput(f"component {part!r} has no class name")
        if name in out:
            raise BadInput(f"class {name!r} appears twice")
        out[name] = parse_weight(name, weight.strip())
    return out


def suggest(name: str, known: Iterable[str]) -> str:
    """' (did you mean: a, b?)' for a misspelt class, or ''."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


def _aligned(p: Mapping[str, float], q: Mapping[str, float]) -> tuple[list[float], list[float]]:
    names = sorted(set(p) | set(q))
    return [p.get(n, 0.0) for n in names], [q.get(n, 0.0) for n in names]


def kl(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """KL(p ‖ q) in nats, with ``q`` clipped at :data:`EPS` and terms where p = 0 dropped."""
    a, b = _aligned(p, q)
    return sum(x * math.log(x / max(y, EPS)) for x, y in zip(a, b) if x > 0)


def js(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen–Shannon divergence in nats (symmetric, bounded by ln 2)."""
    a, b = _aligned(p, q)
    m = [(x + y) / 2 for x, y in zip(a, b)]

    def part(u: list[float]) -> float:
        return sum(x * math.log(x / y) for x, y in zip(u, m) if x > 0)

    return 0.5 * part(a) + 0.5 * part(b)


def top(dist: Mapping[str, float], k: int = 3) -> list[tuple[str, float]]:
    return sorted(dist.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def label(dist: Mapping[str, float], k: int = 3) -> str:
    """A short name like ``pig55-sheep25-snake20``."""
    return "-".join(f"{n.replace(' ', '_')}{round(v * 100)}" for n, v in top(dist, k))

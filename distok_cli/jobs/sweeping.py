"""Sweep jobs: estimate every token of a sweep, check that the end classes move monotonically, plot the shares."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from distok_cli.files.recipes import Recipe
from distok_cli.method.sweep import Sweep, monotonic
from distok_cli.progress import Progress


def estimator_for(cfg: Recipe, kind: str, device: str, dtype: str) -> Any:
    """The token estimator of ``kind`` for ``cfg`` (loads its models)."""
    from distok_cli.backends.token_estimators import make_token_estimator

    return make_token_estimator(cfg.replace(estimator=cfg.estimator.model_copy(update={"kind": kind})), device, dtype)


def estimate_sweep(s: Sweep, est: Any, seeds: list[int], progress: Progress | None = None) -> Sweep:
    """Each token's estimate (stored in its ``estimate``, with KL/JS to its source), and ``s.monotonic``."""
    from distok_cli.jobs.estimation import estimate_record

    tokens = []
    for tok in s.tokens:
        tokens.append(replace(tok, estimate=estimate_record(tok, est, seeds)))
        if progress is not None:
            progress(1)
    s.tokens = tokens
    s.monotonic = monotonic(s, [t.estimate["distribution"] for t in tokens])  # type: ignore[index]
    return s


def shares_plot(s: Sweep, path: Path) -> str:
    """``sweep.png``: each end class's estimated share along the path (dashed: its weight in the source)."""
    from distok_cli.files.safety import atomic_write
    from distok_cli.plots import lines_png

    assert s.monotonic is not None
    series: dict[str, list[float]] = {}
    dashed: dict[str, list[float]] = {}
    if s.kind == "triangle":  # the three corner classes, over the grid points in path order
        names = [next(iter(e)) for e in s.tokens[0].source["sweep"]["ends"]]  # type: ignore[index]
    else:
        names = list(s.monotonic["classes"])
    xs = [float(i) for i in range(len(s.tokens))]
    src = [(t.source or {}).get("distribution") for t in s.tokens]
    for c in names:
        series[c] = [t.estimate["distribution"].get(c, 0.0) for t in s.tokens]  # type: ignore[index]
        if all(isinstance(d, dict) for d in src):
            dashed[c] = [d.get(c, 0.0) for d in src]  # type: ignore[union-attr]
    verdict = "monotonic" if s.monotonic["all"] else "not monotonic"
    title = f"{s.kind} sweep, {len(s.tokens)} tokens: end-class shares ({verdict}); dashed: source weights"
    atomic_write(path, lines_png(xs, series, "token (path order)", "estimated share", title, dashed))
    return str(path)

"""What the commands that make tokens (``encode``, ``sample``, ``sweep``) use besides :class:`Model`: reading a
distribution as users give it, checking sampling options, naming and durably writing tokens, drawing from a
run's concept pool, and estimating and plotting a sweep. Light but for the estimates (torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from distok_cli.files.safety import safe_name
from distok_cli.files.specs import read_spec
from distok_cli.files.tokenfile import to_bytes, write_tokens
from distok_cli.method.generate import MAX_REFINE, check_sample, from_pool, sample_name
from distok_cli.method.sweep import Sweep, check_grid, check_steps
from distok_cli.progress import Bar, silent

__all__ = [
    "MAX_REFINE",
    "check_grid",
    "check_sample",
    "check_steps",
    "estimate_sweep",
    "from_pool",
    "read_spec",
    "safe_name",
    "sample_name",
    "sweep_paths",
    "to_bytes",
    "write_sweep_plot",
    "write_tokens",
]


def sweep_paths(sweep: Sweep, output: str | os.PathLike[str]) -> list[Path]:
    """The files of a sweep's tokens, numbered in path order: ``OUT/000-TITLE.distok`` …"""
    width = len(str(len(sweep.tokens) - 1)) if len(sweep.tokens) > 1000 else 3
    return [
        Path(output) / f"{i:0{width}d}-{safe_name(t.title or 'token', 100)}.distok" for i, t in enumerate(sweep.tokens)
    ]


def estimate_sweep(
    sweep: Sweep,
    estimator: str,
    *,
    images: int = 1,
    seed: int = 0,
    recipe: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    dtype: str = "auto",
    bar: Bar | None = None,
) -> None:
    """Store each token's estimate (``estimator``: text, or rendered ``images`` times from ``seed`` and read
    by BLIP) and whether the end classes' shares move monotonically along the path (``sweep.monotonic``)."""
    from distok_cli.files import recipes
    from distok_cli.jobs import rendering, sweeping

    cfg = recipes.load(rendering.recipe_for_tokens(recipe, sweep.tokens), list(overrides))
    est = sweeping.estimator_for(cfg, estimator, *recipes.device_and_dtype(cfg, device, dtype))
    with (bar or silent)("estimating", len(sweep.tokens)) as advance:
        sweeping.estimate_sweep(sweep, est, list(range(seed, seed + (images if estimator != "text" else 1))), advance)


def write_sweep_plot(sweep: Sweep, path: str | os.PathLike[str]) -> str:
    """``sweep.png``: the end classes' shares along an estimated sweep."""
    from distok_cli.jobs.sweeping import shares_plot

    return shares_plot(sweep, Path(path))

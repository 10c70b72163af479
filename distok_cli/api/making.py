"""What the commands that make tokens (``encode``, ``sample``, ``sweep``) use besides :class:`Model`: reading a
distribution as users give it, checking sampling options, naming and durably writing tokens, drawing from a
run's concept pool, and estimating and plotting a sweep. Light but for the estimates (torch)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from distok_cli.files.safety import check_new_path, safe_name
from distok_cli.files.specs import read_spec
from distok_cli.files.tokenfile import to_bytes, write_tokens
from distok_cli.method import generate
from distok_cli.method.generate import MAX_REFINE, check_sample, from_pool, sample_name
from distok_cli.method.sweep import Sweep, check_grid, check_steps
from distok_cli.progress import Bar, log, silent

__all__ = [
    "HOW",
    "MAX_REFINE",
    "encode_to",
    "sample_files",
    "sweep_files",
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


def sample_files(
    model: Any,
    n: int,
    *,
    prior: str = "gaussian",
    seed: int = 0,
    scale: float = 1.0,
    output: str | os.PathLike[str] = "tokens",
    from_pool: bool = False,
    estimate: str | None = None,
    overwrite: bool = False,
    bar: Bar | None = None,
) -> Iterator[str]:
    """``distok sample``: ``n`` tokens from random latents of ``model`` (or drawn from its run's concept
    pool) written to ``output`` with deterministic names, each path yielded once its file is durable."""
    check_sample(n, prior, scale)
    if from_pool:
        tokens: Any = generate.from_pool(model.path, n, seed)  # the parameter shadows the name
        paths = [Path(output) / f"pool-s{seed}-{i:04d}.distok" for i in range(len(tokens))]
    else:
        tokens = model.samples(n, prior, seed, scale, estimate)
        paths = [Path(output) / f"{sample_name(prior, seed, i)}.distok" for i in range(n)]
    with (bar if bar is not None and len(paths) >= 200 else silent)("writing tokens", len(paths)) as advance:
        yield from write_tokens(tokens, paths, overwrite, advance)


def encode_to(
    model: Any,
    spec: str,
    output: str | os.PathLike[str] | None = None,
    *,
    normalize: bool = True,
    refine: int | str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    overwrite: bool = False,
) -> tuple[Any, str | None]:
    """``distok encode``: the token of ``spec`` (``pig:0.55,sheep:0.45``, a JSON/YAML file or ``-``), written to
    ``output`` (default: its title as a file name; ``"-"``: not written, for the caller to stream). Returns
    the token and the path written."""
    weights = read_spec(spec)
    if refine and output and str(output) != "-":  # refused before the text encoder loads
        check_new_path([Path(output)], overwrite)
    token = model.encode(weights, normalize=normalize, refine=refine, device=device, dtype=dtype)
    r = (token.source or {}).get("refine")
    if r:
        log.info(
            f"refined {r['steps']} steps in {len(r['styles'])} styles: KL {r['kl_before']:.3f} -> {r['kl_after']:.3f} "
            f"({r['seconds']:.2f} s)"
        )
    if output is not None and str(output) == "-":
        return token, None
    # A default name comes from class names, which come from the checkpoint: never a path of its own.
    path = Path(output) if output else Path(f"{safe_name(token.title)}.distok")
    return token, next(iter(write_tokens([token], [path], overwrite)))


#: How each kind of sweep moves, in the notice ``sweep`` gives.
HOW = {
    "weights": "along the weights (each token encoded from its distribution)",
    "triangle": "over the triangle of three-class mixtures",
    "latent": "through the model's latent space (both tokens come from this model)",
    "token": "through token space (the tokens do not both come from this model with their latents)",
}


def sweep_files(
    model: Any,
    *ends: Any,
    steps: int = 9,
    grid: int | None = None,
    slerp: bool = False,
    output: str | os.PathLike[str] = "sweep",
    estimate: str | None = None,
    images: int = 1,
    seed: int = 0,
    recipe: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    dtype: str = "auto",
    overwrite: bool = False,
    bar: Bar | None = None,
) -> tuple[Sweep, list[str], str | None]:
    """``distok sweep``: tokens along a path, in order, written to ``output`` (and with ``estimate`` their
    estimates and ``sweep.png``); smoothness and monotonicity are said as notices. Returns the sweep, the
    paths written and the plot's path."""
    check_steps(steps)
    if grid is not None:
        check_grid(grid)
    s = model.sweep(*ends, steps=steps, grid=grid, slerp=slerp)
    paths = sweep_paths(s, output)
    check_new_path(paths + ([Path(output) / "sweep.png"] if estimate else []), overwrite)  # before any estimate
    log.info(
        f"{len(s.tokens)} tokens {HOW[s.kind]}" + (f", {s.interpolation}" if s.kind in ("latent", "token") else "")
    )
    if estimate:
        estimate_sweep(
            s,
            estimate,
            images=images,
            seed=seed,
            recipe=recipe,
            overrides=overrides,
            device=device,
            dtype=dtype,
            bar=bar,
        )
    sm = s.smoothness
    log.info(
        f"smoothness: largest step {sm['max_step']:.4g} = {sm['max_over_mean']:.3g} x the mean step {sm['mean_step']:.4g}"
        if sm["max_over_mean"] is not None
        else "smoothness: every token is the same"
    )
    if s.monotonic is not None:
        bad = [c for c, v in s.monotonic["classes"].items() if not v["monotonic"]]
        log.info("end-class shares move monotonically" if not bad else f"not monotonic: {', '.join(bad)}")
    written = list(write_tokens(s.tokens, paths, overwrite))
    plot = None
    if s.monotonic is not None:
        plot = write_sweep_plot(s, Path(output) / "sweep.png")
        log.info(f"wrote {plot}")
    return s, written, plot

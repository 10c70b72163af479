"""`distok sweep`: tokens along a path (weights, a triangle, or between two tokens), written in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    OverwriteOpt,
    QuietOpt,
    SetOpt,
    TokenRecipeOpt,
    output_option,
    seed_option,
)

HOW = {
    "weights": "along the weights (each token encoded from its distribution)",
    "triangle": "over the triangle of three-class mixtures",
    "latent": "through the model's latent space (both tokens come from this model)",
    "token": "through token space (the tokens do not both come from this model with their latents)",
}


def sweep(
    ends: Annotated[
        list[str],
        typer.Argument(
            metavar="ENDS...",
            help="a:b (a line), a:b:c with --grid (a triangle), two distributions (pig:0.5,sheep:0.5 cat:1), or two token files.",
        ),
    ],
    steps: Annotated[int, typer.Option("--steps", help="Tokens along a line, ends included (2 to 1000).")] = 9,
    grid: Annotated[
        int | None, typer.Option("--grid", help="Points along each edge of a triangle a:b:c (2 to 40).")
    ] = None,
    slerp: Annotated[
        bool, typer.Option("--slerp", help="Between tokens: spherical interpolation (per part), not linear.")
    ] = False,
    model: ModelOpt = "",
    output: Annotated[Path, output_option("Folder for the token files (NNN-TITLE.distok, in path order).")] = Path(
        "sweep"
    ),
    estimate: Annotated[
        str | None,
        typer.Option(
            "--estimate",
            help="Also estimate every token (text, blip-itm, blip-vqa or prior), store it, "
            "check the end classes move monotonically and write sweep.png.",
        ),
    ] = None,
    images: Annotated[
        int, typer.Option("--images", min=1, max=256, help="Renders per token for an image estimator.")
    ] = 1,
    seed: Annotated[int, seed_option("First render seed of the estimates.")] = 0,
    recipe: TokenRecipeOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    json_: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Tokens along a path, in order: paths on stdout (pipe them into `render --grid`); smoothness on stderr."""
    from distok_cli import api
    from distok_cli.cli.model_choice import load_model
    from distok_cli.cli.options import check_estimator
    from distok_cli.cli.output import Output

    out = Output(quiet)
    api.check_steps(steps)
    if grid is not None:
        api.check_grid(grid)
    check_estimator(estimate)
    ckpt, path = load_model(model, out)
    s = api.Model(ckpt, path).sweep(*ends, steps=steps, grid=grid, slerp=slerp)
    paths = api.sweep_paths(s, output)
    api.check_new_path(paths + ([output / "sweep.png"] if estimate else []), overwrite)  # before any estimate
    out.notice(
        f"{len(s.tokens)} tokens {HOW[s.kind]}" + (f", {s.interpolation}" if s.kind in ("latent", "token") else "")
    )
    if estimate:
        api.estimate_sweep(
            s,
            estimate,
            images=images,
            seed=seed,
            recipe=recipe,
            overrides=list(set_ or []),
            device=device,
            dtype=dtype,
            bar=out.bar,
        )
    sm = s.smoothness
    out.notice(
        f"smoothness: largest step {sm['max_step']:.4g} = {sm['max_over_mean']:.3g} x the mean step {sm['mean_step']:.4g}"
        if sm["max_over_mean"] is not None
        else "smoothness: every token is the same"
    )
    if s.monotonic is not None:
        bad = [c for c, v in s.monotonic["classes"].items() if not v["monotonic"]]
        out.notice("end-class shares move monotonically" if not bad else f"not monotonic: {', '.join(bad)}")
    written = list(api.write_tokens(s.tokens, paths, overwrite))
    if s.monotonic is not None:
        out.notice(f"wrote {api.write_sweep_plot(s, output / 'sweep.png')}")
    if json_:
        out.data(json.dumps({**s.summary(), "files": written}, sort_keys=True))
    else:
        for p in written:
            out.data(p)

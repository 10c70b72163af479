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
    s, written, _ = api.sweep_files(
        api.Model(ckpt, path),
        *ends,
        steps=steps,
        grid=grid,
        slerp=slerp,
        output=output,
        estimate=estimate,
        images=images,
        seed=seed,
        recipe=recipe,
        overrides=list(set_ or []),
        device=device,
        dtype=dtype,
        overwrite=overwrite,
        bar=out.bar,
    )
    if json_:
        out.data(json.dumps({**s.summary(), "files": written}, sort_keys=True))
    else:
        for p in written:
            out.data(p)

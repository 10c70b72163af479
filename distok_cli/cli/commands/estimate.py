"""`distok estimate`: the class distribution of an image, or of what a token renders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from distok_cli.cli.options import (
    DeviceOpt,
    DtypeOpt,
    EstimatorOpt,
    JsonOpt,
    QuietOpt,
    SetOpt,
    TokenRecipeOpt,
    seed_option,
)
from distok_cli.cli.output import Output, expand_paths


def estimate(
    files: Annotated[
        list[str], typer.Argument(metavar="TOKEN|IMAGE...", help="Token files or images; '-' reads paths from stdin.")
    ],
    recipe: TokenRecipeOpt = None,
    classes: Annotated[
        str | None, typer.Option("--classes", help="Comma-separated class names (default: the recipe's).")
    ] = None,
    images: Annotated[
        int | None, typer.Option("--images", min=1, max=256, help="Renders per token to average.")
    ] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Prompt the token is rendered in (with '<>').")] = None,
    seed: Annotated[int, seed_option("First render seed (then seed+1, ...).")] = 0,
    write: Annotated[
        bool, typer.Option("--write", help="Store the estimate in the token file (metadata only).")
    ] = False,
    estimator: EstimatorOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Also write the distributions as a bar chart PNG.")
    ] = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Estimate class distributions (BLIP); for tokens also KL and JS to their source distribution."""
    from distok_cli import api

    api.check_estimator(estimator)
    if plot is not None:
        api.check_target(plot, what="--plot")
    out = Output(quiet)
    results = api.estimate(
        expand_paths(files),
        recipe=recipe,
        classes=classes,
        images=images,
        prompt=prompt,
        seed=seed,
        write=write,
        estimator=estimator,
        overrides=list(set_ or []),
        device=device,
        dtype=dtype,
        plot=plot,
        bar=out.bar,
    )
    for r in results:
        if json_:
            out.data(json.dumps(r, sort_keys=True))
        else:
            from distok_cli.cli import views

            out.show(views.result_view(r))

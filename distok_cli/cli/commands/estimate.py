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
    check_estimator,
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
    from distok_cli.files import recipes
    from distok_cli.jobs import estimation, rendering

    check_estimator(estimator)
    if plot is not None:
        from distok_cli.files.safety import check_target

        check_target(plot, what="--plot")
    out = Output(quiet)
    paths = expand_paths(files)
    if recipe is None:
        from distok_cli.files import tokenfile

        tokens = [tokenfile.load(p) for p in paths if p.endswith(tokenfile.TOKEN_SUFFIXES)]
        recipe = rendering.recipe_for_tokens(None, tokens)
    cfg = recipes.load(recipe, list(set_ or []))
    class_list = estimation.parse_classes(classes) if classes is not None else cfg.classes
    where = recipes.placement(cfg, device, dtype)
    with out.progress("estimating", len(paths)) as task:
        results = estimation.estimate_paths(
            paths,
            cfg,
            class_list,
            images=images,
            prompt=prompt,
            seed=seed,
            write=write,
            device=where[0],
            dtype=where[1],
            kind=estimator,
            progress=task.advance,
        )
    if plot is not None:
        out.notice(f"wrote {estimation.write_plot(results, plot)}")
    for r in results:
        if json_:
            out.data(json.dumps(r, sort_keys=True))
        else:
            from rich.console import Console

            from distok_cli.cli import views

            Console(highlight=False).print(views.result_view(r))

"""`distok inspect`: what a token file (or a trained run) holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from distok_cli.cli.options import JsonOpt, QuietOpt
from distok_cli.cli.output import Output, expand_paths


def inspect(
    files: Annotated[
        list[str],
        typer.Argument(metavar="FILE...", help="Token files, run folders or checkpoints; '-' reads paths from stdin."),
    ],
    json_: JsonOpt = False,
    neighbors: Annotated[
        int, typer.Option("--neighbors", "-k", min=0, max=1000, help="List the K nearest vocabulary tokens by cosine.")
    ] = 0,
    quiet: QuietOpt = False,
) -> None:
    """Show a token's vector statistics, source, estimate, lineage and model (or a run's config)."""
    from distok_cli import api
    from distok_cli.cli import views

    out = Output(quiet)
    for path in expand_paths(files):
        found = api.inspect(path, neighbors)
        if json_:
            out.data(json.dumps(found.to_json(), sort_keys=True))
        elif found.run is not None:
            out.show(json_data=found.run)
        else:
            out.show(views.token_panel(found.token, found.neighbors))

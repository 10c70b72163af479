"""`distok diff`: how two tokens differ."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from distok_cli.cli.options import JsonOpt, QuietOpt
from distok_cli.cli.output import Output


def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="First token file.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Second token file.")],
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Cosine, L2, norm ratio, latent distance and per-class deltas (B minus A) with JS divergence."""
    from distok_cli import api
    from distok_cli.cli import views

    out = Output(quiet)
    result = api.diff(a, b)
    if json_:
        out.data(json.dumps(result, sort_keys=True))
    else:
        out.show(views.diff_table(result))

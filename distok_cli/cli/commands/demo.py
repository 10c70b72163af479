"""`distok demo`: the whole loop on an offline default, in a few minutes on two CPU cores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import OverwriteOpt, QuietOpt, output_option


def demo(
    output: Annotated[Path, output_option("Folder for everything the demo makes.")] = Path("distok-demo"),
    recipe: Annotated[
        str | None, typer.Option("--recipe", "-r", help="Default: minilm-animals when installed, else tiny.")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Training steps (default: the recipe's).")] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a recipe briefly, encode and sample tokens, render a contact sheet, estimate; say where it all is."""
    from distok_cli import api
    from distok_cli.cli.output import Output

    out = Output(quiet)
    for line in api.demo(output, recipe, steps, overwrite, bar=out.bar):
        out.log(line)
    out.data(str(output))

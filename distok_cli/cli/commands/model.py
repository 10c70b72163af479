"""`distok model`: show or set the default model (like `llm models default` and `git config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def model(
    run: Annotated[
        Path | None, typer.Argument(metavar="[RUN]", help="Make this run folder (or checkpoint) the default.")
    ] = None,
    unset: Annotated[bool, typer.Option("--unset", help="Forget the default model.")] = False,
) -> None:
    """Print the default model (used when -m and DISTOK_MODEL are absent), or set it to RUN."""
    import sys

    from distok_cli.errors import BadInput, DistokError
    from distok_cli.files import checkpoint, config

    if unset and run is not None:
        raise BadInput("give RUN or --unset, not both")
    if unset:
        config.set_default_model(None)
        return
    if run is not None:
        checkpoint.load(run)  # refuse anything that is not a readable model
        sys.stdout.write(f"{config.set_default_model(str(run))}\n")
        return
    current = config.default_model()
    if current is None:
        raise DistokError("no default model (set one with `distok model RUN`; `distok train` and `distok demo` set it)")
    sys.stdout.write(current + "\n")

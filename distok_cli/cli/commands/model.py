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

    from distok_cli import api
    from distok_cli.errors import BadInput

    if unset and run is not None:
        raise BadInput("give RUN or --unset, not both")
    if unset:
        api.set_default_model(None)
        return
    if run is not None:
        sys.stdout.write(f"{api.set_default_model(run)}\n")
        return
    sys.stdout.write(api.default_model() + "\n")

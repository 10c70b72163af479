"""`distok gallery`: one self-contained HTML page over tokens and their renders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import OverwriteOpt, QuietOpt, output_option


def gallery(
    paths: Annotated[
        list[str],
        typer.Argument(metavar="PATH...", help="Token files, rendered PNGs or folders ('-': paths from stdin)."),
    ],
    output: Annotated[Path, output_option("The HTML file to write.", False)] = Path("gallery.html"),
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Run or checkpoint for nearest classes (default: the default model, if any)."
        ),
    ] = "",
    thumb: Annotated[int, typer.Option("--thumb", help="Thumbnail size in pixels (32-1024).")] = 192,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write one static page (no network) of tokens: renders by prompt and seed, source vs estimate, KL/JS,
    nearest classes, lineage and the command lines to re-render or export; print its path."""
    from distok_cli import api
    from distok_cli.cli.output import Output, expand_paths
    from distok_cli.errors import BadInput

    out = Output(quiet)
    if output.suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"-o {output}: a gallery is an .html file")
    api.check_new_path([output], overwrite)
    path, n_tokens, n_images = api.gallery(
        expand_paths(paths), output, model=model, thumb=thumb, overwrite=overwrite, bar=out.bar
    )
    out.notice(f"{n_tokens} tokens, {n_images} renders")
    out.data(path)

"""`distok inspect`: what a token file (or a trained run) holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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
    from distok_cli.cli import views
    from distok_cli.files import summary, tokenfile

    out = Output(quiet)
    paths = expand_paths(files)
    for path in paths:
        if Path(path).is_dir() or _is_checkpoint(path):
            from distok_cli.files.checkpoint import describe_run

            info = describe_run(path)
            if json_:
                out.data(json.dumps(info, sort_keys=True))
            else:
                from rich.console import Console

                Console(highlight=False).print_json(data=info)
            continue
        token = tokenfile.load(path)
        near: Any = None
        if neighbors:
            from distok_cli.backends.vocab import nearest, nearest_parts

            near = nearest_parts(token, neighbors) if token.layout else nearest(token, neighbors)
        if json_:
            d = summary.describe(token)
            if isinstance(near, dict):  # a token with parts: each part's neighbours in its own encoder
                d["neighbors"] = {part: [{"token": t, "cosine": c} for t, c in rows] for part, rows in near.items()}
            elif near is not None:
                d["neighbors"] = [{"token": t, "cosine": c} for t, c in near]
            out.data(json.dumps(d, sort_keys=True))
        else:
            from rich.console import Console

            Console(highlight=False).print(views.token_panel(token, near))


def _is_checkpoint(path: str) -> bool:
    """A DisTok checkpoint names itself in its safetensors header (distok.checkpoint)."""
    if not path.endswith(".safetensors"):
        return False
    try:
        with open(path, "rb") as fh:
            return b'"distok.checkpoint"' in fh.read(4096)
    except OSError:
        return False

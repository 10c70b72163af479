"""`distok export`: tokens → textual-inversion files that ComfyUI, AUTOMATIC1111, InvokeAI and diffusers load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import OverwriteOpt, QuietOpt, output_option


def export(
    tokens: Annotated[list[str], typer.Argument(metavar="TOKEN...", help="Token files ('-': paths from stdin).")],
    to: Annotated[str, typer.Option("--to", help="comfyui, a1111, invokeai or diffusers.")],
    output: Annotated[
        Path, output_option("Folder to write into, e.g. the tool's embeddings folder.", True, "--dest")
    ] = Path("."),
    name: Annotated[
        str, typer.Option("--name", help="Trigger-word template: {title}, {id}, {id6}, {stem}, {i}.")
    ] = "{title}-{id6}",
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float16.")] = "float32",
    base: Annotated[
        str,
        typer.Option(
            "--base",
            help="auto (the token's own), sd1 (one 768-d vector), sdxl (clip_l + clip_g) or flux "
            "(clip_l + t5); a token of another kind is refused.",
        ),
    ] = "auto",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write tokens as NAME.safetensors embeddings for an SD 1.x, SDXL or FLUX.1 tool; print the paths, and how to use each."""
    from distok_cli import api
    from distok_cli.cli.output import Output, expand_paths

    api.check_export_target(to)
    out = Output(quiet)
    for done in api.export(expand_paths(tokens), to, output, name=name, dtype=dtype, base=base, overwrite=overwrite):
        out.data(done.path)
        out.notice(done.usage)

"""`distok render`: tokens + prompts → PNG files (and a contact sheet)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import (
    DeviceOpt,
    DtypeOpt,
    OverwriteOpt,
    QuietOpt,
    SetOpt,
    TokenRecipeOpt,
    output_option,
    seed_option,
)
from distok_cli.cli.output import Output, expand_paths
from distok_cli.limits import MIN_PRIOR_STEPS, MIN_SIZE


def render(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="TOKEN... PROMPT...", help="Token files ('-' reads paths from stdin) and prompts with '<>'."
        ),
    ] = None,
    output: Annotated[Path, output_option("Folder for the PNG files.")] = Path("renders"),
    seed: Annotated[int | None, seed_option("One seed for every image.")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="Several seeds: '0-3,7'.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Decoder (or SD) denoising steps.")] = None,
    prior_steps: Annotated[
        int | None,
        typer.Option("--prior-steps", min=MIN_PRIOR_STEPS, help=f"Kandinsky prior steps (at least {MIN_PRIOR_STEPS})."),
    ] = None,
    guidance: Annotated[float | None, typer.Option("--guidance", min=0, help="Guidance scale.")] = None,
    size: Annotated[int | None, typer.Option("--size", min=MIN_SIZE, help="Image width and height in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = None,
    recipe: TokenRecipeOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    offload: Annotated[bool, typer.Option("--offload", help="Keep models on the CPU until needed (low VRAM).")] = False,
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the UNet: the first batch compiles (about a minute on an H100), later ones run faster on CUDA.",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    grid: Annotated[
        bool, typer.Option("--grid", help="Also write a labelled contact sheet (tokens × prompts).")
    ] = False,
    from_: Annotated[Path | None, typer.Option("--from", help="Re-render the image a distok PNG describes.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Render tokens in prompts ("a watercolor of a <>"); print the written PNG paths."""
    from distok_cli import api
    from distok_cli.errors import BadInput

    out = Output(quiet)
    if seed is not None and seeds is not None:
        raise BadInput("give --seed or --seeds, not both")
    where = {
        "output": output,
        "overrides": list(set_ or []),
        "device": device,
        "offload": offload,
        "compile": compile_,
        "overwrite": overwrite,
        "grid": grid,
        "bar": out.bar,
    }
    if from_ is not None:
        if items:
            raise BadInput("--from re-renders one image: give no tokens or prompts with it")
        done = api.rerender(from_, **where)
    else:
        token_args, prompts = _split_args(list(items or []))
        if not token_args:
            raise BadInput("no token files given (pass paths, or '-' to read them from stdin)")
        if not prompts:
            raise BadInput("no prompt given: add one with '<>' where the token goes, e.g. \"a photo of a <>\"")
        done = api.render(
            expand_paths(token_args),
            prompts,
            seeds=seeds if seeds is not None else [seed or 0],
            recipe=recipe,
            dtype=dtype,
            steps=steps,
            prior_steps=prior_steps,
            guidance=guidance,
            size=size,
            batch_size=batch_size,
            **where,
        )
    if not done.main:  # another process of a multi-process run: the main one prints every path
        return
    for path in done.paths:
        out.data(path)
    if done.grid:
        out.data(done.grid)


def _split_args(items: list[str]) -> tuple[list[str], list[str]]:
    """Positional arguments are token paths or prompts: a prompt is anything containing ``<>``."""
    from distok_cli import api
    from distok_cli.errors import BadInput

    tokens, prompts = [], []
    for a in items:
        if "<>" in a:
            prompts.append(api.check_prompt(a))
        elif a == "-" or Path(a).exists() or a.endswith(api.TOKEN_SUFFIXES):
            tokens.append(a)
        else:
            raise BadInput(f"{a!r} is neither a token file nor a prompt with '<>' (e.g. \"a photo of a <>\")")
    return tokens, prompts

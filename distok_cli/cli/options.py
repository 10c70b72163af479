"""Option declarations shared by every command, so names and help stay consistent."""

from __future__ import annotations

from typing import Annotated, Any

import typer

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notices on stderr.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object per line on stdout.")]


def seed_option(help: str) -> Any:
    """``--seed``: the same name and bounds everywhere; what a seed seeds differs, so each command says."""
    return typer.Option("--seed", min=0, max=2**63 - 1, help=help)


def output_option(help: str, folder: bool = True, *aliases: str) -> Any:
    """``-o/--output``: what is written there differs by command, so each command says. The path is checked
    as it is parsed, before any model loads: no NUL, no name over 255 bytes, no file where a folder must be."""

    def check(value: Any) -> Any:
        if value is not None and str(value) != "-":
            from distok_cli import api

            api.check_target(value, folder=folder)
        return value

    return typer.Option("--output", "-o", *aliases, help=help, callback=check)


DeviceOpt = Annotated[
    str, typer.Option("--device", envvar="DISTOK_DEVICE", help="Torch device: auto, cpu, cuda, cuda:N, mps.")
]
DtypeOpt = Annotated[str, typer.Option("--dtype", envvar="DISTOK_DTYPE", help="auto, float32, float16 or bfloat16.")]
RecipeOpt = Annotated[
    str, typer.Option("--recipe", "-r", envvar="DISTOK_RECIPE", help="Recipe name (see recipes/) or YAML path.")
]
TokenRecipeOpt = Annotated[
    str | None,
    typer.Option(
        "--recipe",
        "-r",
        envvar="DISTOK_RECIPE",
        help="Recipe name or YAML path (default: the recipe recorded in the tokens, else tiny).",
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Trained run folder or checkpoint file (default: $DISTOK_MODEL, else the default model: `distok model`).",
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a recipe value: section.key=value (repeatable).")
]
EstimatorOpt = Annotated[
    str | None,
    typer.Option(
        "--estimator",
        help="blip-itm or blip-vqa (render + BLIP), text (no rendering) or prior (Kandinsky prior).",
    ),
]


def check_estimator(name: str | None) -> str | None:
    from distok_cli import api

    return api.check_estimator(name)

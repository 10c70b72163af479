"""`distok encode`: a class distribution (or a mix of tokens) → one creative token."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from distok_cli.cli.options import DeviceOpt, DtypeOpt, ModelOpt, OverwriteOpt, QuietOpt, output_option


def encode(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="SPEC",
            help="pig:0.55,sheep:0.25,snake:0.20 | a .json/.yaml file | '-'; components may be token files.",
        ),
    ],
    model: ModelOpt = "",
    output: Annotated[
        str | None, output_option("Token file to write ('-': the bytes on stdout).", folder=False)
    ] = None,
    no_normalize: Annotated[bool, typer.Option("--no-normalize", help="Use the weights as given.")] = False,
    refine: Annotated[
        str,
        typer.Option(
            "--refine",
            metavar="N|auto",
            help="Then take N gradient steps on the token against the text-side estimate of its distribution in the model's training styles (loads the text encoder: torch). auto: 30 steps for a model trained with distok's objective; 0: the encoder's token alone, one forward, no torch.",
        ),
    ] = "auto",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Encode a distribution into a token with a trained model (one MLP forward); print the path."""
    from distok_cli import api
    from distok_cli.cli.model_choice import load_model
    from distok_cli.cli.output import Output
    from distok_cli.errors import BadInput

    out = Output(quiet)
    steps: int | str = refine if refine == "auto" else _steps(refine)
    ckpt, path = load_model(model, out)
    token, written = api.encode_to(
        api.Model(ckpt, path),
        spec,
        output,
        normalize=not no_normalize,
        refine=steps,
        device=device,
        dtype=dtype,
        overwrite=overwrite,
    )
    if written is not None:
        out.data(written)
        return
    if sys.stdout.isatty():
        raise BadInput("refusing to write binary token bytes to a terminal (redirect stdout or give -o FILE)")
    data = api.to_bytes(token)
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise BadInput("stdout does not accept bytes")
    buffer.write(data)
    buffer.flush()


def _steps(value: str) -> int:
    from distok_cli.api import MAX_REFINE
    from distok_cli.errors import BadInput

    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_REFINE:
        raise BadInput(f"--refine must be auto or a number of steps from 0 to {MAX_REFINE}, got {value!r}")
    return n

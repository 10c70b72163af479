"""`distok sample`: random latents → creative tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import ModelOpt, OverwriteOpt, QuietOpt, output_option, seed_option


def sample(
    n: Annotated[int, typer.Option("--n", min=1, max=100000, help="How many tokens.")] = 8,
    prior: Annotated[
        str, typer.Option("--prior", help="gaussian, laplace or cauchy (zero mean; unit variance where defined).")
    ] = "gaussian",
    scale: Annotated[float, typer.Option("--scale", help="Multiply the latents by this.")] = 1.0,
    seed: Annotated[int, seed_option("Seed; token i of a seed is the same whatever --n.")] = 0,
    model: ModelOpt = "",
    output: Annotated[Path, output_option("Folder for the token files.")] = Path("tokens"),
    from_pool: Annotated[bool, typer.Option("--from-pool", help="Draw from the run's concept pool instead.")] = False,
    estimate: Annotated[
        str | None,
        typer.Option(
            "--estimate",
            metavar="text",
            help="Store each token's text-side estimate (what it reads as; loads the model's text encoder: torch).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Sample tokens from a prior over DisTok's latent space; print their paths (deterministic names)."""
    from distok_cli import api
    from distok_cli.cli.model_choice import load_model
    from distok_cli.cli.output import Output

    out = Output(quiet)
    api.check_sample(n, prior, scale)
    if estimate not in (None, "text"):
        from distok_cli.errors import BadInput

        raise BadInput(f"--estimate must be text, got {estimate!r}")
    if estimate and from_pool:
        from distok_cli.errors import BadInput

        raise BadInput("--estimate is for sampled latents; pool concepts carry their estimate already")
    ckpt, model_path = load_model(model, out)
    for p in api.sample_files(
        api.Model(ckpt, model_path),
        n,
        prior=prior,
        seed=seed,
        scale=scale,
        output=output,
        from_pool=from_pool,
        estimate=estimate,
        overwrite=overwrite,
        bar=out.bar,
    ):
        out.data(p)

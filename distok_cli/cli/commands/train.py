"""`distok train`: train DisTok on a frozen base model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import DeviceOpt, DtypeOpt, QuietOpt, RecipeOpt, SetOpt, output_option, seed_option


def train(
    output: Annotated[Path, output_option("Run folder (checkpoint, pool, log, loss.png).")],
    recipe: RecipeOpt = "tiny",
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Total steps (default: the recipe's).")] = None,
    seed: Annotated[int | None, seed_option("Random seed (default: the recipe's).")] = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --output exactly where it stopped.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train E_dis/D_tok (fusion, estimation + concept pool, consistency); print the run folder."""
    from distok_cli import api
    from distok_cli.cli.output import Output

    out = Output(quiet)
    done = api.train(
        recipe,
        output,
        steps=steps,
        seed=seed,
        overrides=list(set_ or []),
        device=device,
        dtype=dtype,
        resume=resume,
        bar=out.bar,
    )
    out.notice(f"trained {done.recipe} to step {done.step}: pool {done.pool}, checkpoint {done.checkpoint_path}")
    out.notice(f"{done.default} is now the default model (`distok model` shows it)")
    out.data(str(output))

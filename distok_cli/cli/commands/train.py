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
    from distok_cli.cli.output import Output
    from distok_cli.files import recipes
    from distok_cli.method import trainer

    out = Output(quiet)
    overrides = list(set_ or [])
    if resume:
        if not (output / "recipe.yaml").is_file():
            from distok_cli.errors import BadInput

            raise BadInput(f"{output}: nothing to resume (no recipe.yaml)")
        cfg = recipes.load(str(output / "recipe.yaml"), overrides)
    else:
        if seed is not None:
            overrides.append(f"seed={seed}")
        cfg = recipes.load(recipe, overrides)
    where = recipes.placement(cfg, device, dtype)
    from distok_cli.files.runlock import RunLock

    lock = RunLock(output)  # held while this command trains: one writer per run folder
    from distok_cli import interrupts

    prepared = training = False
    try:
        with interrupts.deferred():  # the folder is prepared whole, so a stop can undo it exactly
            created = trainer.prepare_run(output, cfg, resume, lock)
            prepared = True
        t = trainer.build(cfg, output, *where)
        if resume:
            t.load_state()
            out.notice(f"resuming {output} at step {t.step}")
        total = steps if steps is not None else (t.target if resume else cfg.train.steps)
        with out.progress("training", total) as task:
            task.advance(t.step)
            training = True  # from here on a stop saves a checkpoint (Trainer.train)
            t.train(total, task.advance)
    except BaseException as exc:
        signum = interrupts.signal_of(exc)
        if not training:  # stopped or failed while starting: a fresh run leaves no half-made folder
            lock.release()
            if prepared and not resume:
                trainer.discard_run(output, created)
            raise
        if signum is None:
            raise
        from distok_cli.errors import StoppedBySignal

        raise StoppedBySignal(
            f"{interrupts.words(signum)} at step {t.step}; checkpoint saved (continue with --resume)", signum
        ) from None
    finally:
        lock.release()
    from distok_cli.files import config

    out.notice(f"trained {cfg.name} to step {t.step}: pool {len(t.pool)}, checkpoint {output / 'model.safetensors'}")
    out.notice(f"{config.set_default_model(str(output))} is now the default model (`distok model` shows it)")
    out.data(str(output))

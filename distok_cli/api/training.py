"""``train``: what ``distok train`` does, from Python: one writer per run folder (a kernel lock), a run
folder prepared whole and removed again if the start fails, exact ``resume``, and a stop signal that saves a
checkpoint and says so (:class:`~distok_cli.errors.StoppedBySignal`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distok_cli import interrupts
from distok_cli.errors import BadInput, StoppedBySignal
from distok_cli.progress import Bar, log, silent


@dataclass
class Trained:
    """A finished training: its run folder, recipe, step and concept pool; ``default`` is the default model
    it set (or None); ``trainer`` keeps the loaded models for a caller that goes on with them (the demo)."""

    run: Path
    recipe: str
    step: int
    pool: int
    default: Path | None = None
    trainer: Any = field(default=None, repr=False, compare=False)

    @property
    def checkpoint_path(self) -> Path:
        return self.run / "model.safetensors"

    def model(self) -> Any:
        """The trained :class:`~distok_cli.api.model.Model`, sharing what this training loaded (its text side,
        which refinement and the text estimator use, and its estimator): nothing loads twice."""
        from distok_cli.api.model import Model
        from distok_cli.backends.token_estimators import TextEstimator

        t = self.trainer
        ckpt = t.checkpoint()
        ckpt.path = str(self.checkpoint_path)
        text = t.estimator if isinstance(t.estimator, TextEstimator) else None
        return Model(ckpt, ckpt.path, _scorer=t.scorer, _estimator=text, _trained_estimator=t.estimator)


def train(
    recipe: str,
    output: str | os.PathLike[str],
    *,
    steps: int | None = None,
    seed: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "auto",
    dtype: str = "auto",
    resume: bool = False,
    set_default: bool = True,
    bar: Bar | None = None,
) -> Trained:
    """Train DisTok from ``recipe`` (a name or a YAML path; with ``resume``, the run's own ``recipe.yaml``)
    into the run folder ``output``, to ``steps`` (default: the recipe's, or the run's own target when
    resuming). ``set_default`` makes the run the default model, as the command does."""
    from distok_cli.files import config, recipes
    from distok_cli.files.runlock import RunLock
    from distok_cli.method import trainer
    from distok_cli.method.runfolder import RunFolder

    output = Path(output)
    overrides = list(overrides)
    if resume:
        if not (output / "recipe.yaml").is_file():
            raise BadInput(f"{output}: nothing to resume (no recipe.yaml)")
        cfg = recipes.load(str(output / "recipe.yaml"), overrides)
    else:
        if seed is not None:
            overrides.append(f"seed={seed}")
        cfg = recipes.load(recipe, overrides)
    where = recipes.device_and_dtype(cfg, device, dtype)
    lock = RunLock(output)  # held while this call trains: one writer per run folder
    prepared = training = False
    bar = bar or silent
    try:
        with interrupts.deferred():  # the folder is prepared whole, so a stop can undo it exactly
            created = RunFolder(output).prepare(cfg, resume, lock)
            prepared = True
        t = trainer.build(cfg, output, *where)
        if resume:
            t.load_state()
            log.info(f"resuming {output} at step {t.step}")
        total = steps if steps is not None else (t.target if resume else cfg.train.steps)
        with bar("training", total) as advance:
            advance(t.step)
            training = True  # from here on a stop saves a checkpoint (Trainer.train)
            t.train(total, advance)
    except BaseException as exc:
        signum = interrupts.signal_of(exc)
        if not training:  # stopped or failed while starting: a fresh run leaves no half-made folder
            lock.release()
            if prepared and not resume:
                RunFolder(output).discard(created)
            raise
        if signum is None:
            raise
        raise StoppedBySignal(
            f"{interrupts.words(signum)} at step {t.step}; checkpoint saved (continue with --resume)", signum
        ) from None
    finally:
        lock.release()
    default = config.set_default_model(str(output)) if set_default else None
    return Trained(output, cfg.name, t.step, len(t.pool), default, t)

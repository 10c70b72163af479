"""Looking at tokens and handing them on: ``inspect``, ``diff``, ``describe``, ``export``, ``gallery`` and the
default model, as the commands of the same names use them. Light: numpy, no torch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput, DistokError
from distok_cli.files.tokenfile import Token
from distok_cli.progress import Bar, log, silent


@dataclass
class Inspected:
    """What ``inspect`` found at a path: a run (``run``: its config, as ``describe_run`` shows it) or a
    token (``token``, and with ``neighbors`` its nearest vocabulary tokens: a list of (token, cosine), or
    one such list per part of a token with parts)."""

    path: str
    run: dict[str, Any] | None = None
    token: Token | None = None
    neighbors: Any = None

    def to_json(self) -> dict[str, Any]:
        if self.run is not None:
            return self.run
        from distok_cli.files import summary

        assert self.token is not None
        d = summary.describe(self.token)
        if isinstance(self.neighbors, dict):  # a token with parts: each part's neighbours in its own encoder
            d["neighbors"] = {p: [{"token": t, "cosine": c} for t, c in rows] for p, rows in self.neighbors.items()}
        elif self.neighbors is not None:
            d["neighbors"] = [{"token": t, "cosine": c} for t, c in self.neighbors]
        return d


def inspect(path: str | os.PathLike[str], neighbors: int = 0) -> Inspected:
    """A token file (with its ``neighbors`` nearest vocabulary tokens, read from the encoder's files), or a
    run folder or checkpoint (its config)."""
    from distok_cli.files import checkpoint, tokenfile

    path = str(path)
    if Path(path).is_dir() or checkpoint.names_itself(path):
        return Inspected(path, run=checkpoint.describe_run(path))
    token = tokenfile.load(path)
    near: Any = None
    if neighbors:
        from distok_cli.backends.vocab import nearest, nearest_parts

        near = nearest_parts(token, neighbors) if token.layout else nearest(token, neighbors)
    return Inspected(path, token=token, neighbors=near)


def diff(a: str | os.PathLike[str] | Token, b: str | os.PathLike[str] | Token) -> dict[str, Any]:
    """Cosine, L2, norm ratio, latent distance and per-class deltas (B minus A) with JS divergence."""
    from distok_cli.files import summary, tokenfile

    return summary.compare(*(t if isinstance(t, Token) else tokenfile.load(t) for t in (a, b)))


def describe(token: Token) -> dict[str, Any]:
    """A token's summary: statistics, source, estimate, lineage, model (``inspect --json``)."""
    from distok_cli.files import summary

    return summary.describe(token)


def source_distribution(token: Token) -> dict[str, float] | None:
    from distok_cli.files import summary

    return summary.source_distribution(token)


def sweep_text(token: Token) -> str | None:
    from distok_cli.files import summary

    return summary.sweep_text(token)


def top(distribution: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` largest shares of a distribution, largest first."""
    from distok_cli.files import distributions

    return distributions.top(distribution, k)


@dataclass
class Exported:
    path: str
    name: str
    usage: str  # how to use it in the target tool, one line


def export(
    tokens: Sequence[str | os.PathLike[str] | Token],
    to: str,
    dest: str | os.PathLike[str] = ".",
    *,
    name: str = "{title}-{id6}",
    dtype: str = "float32",
    base: str = "auto",
    overwrite: bool = False,
) -> list[Exported]:
    """Write tokens as ``NAME.safetensors`` embeddings ComfyUI, AUTOMATIC1111, InvokeAI or diffusers load
    (``to``); every token is checked, named and placed before anything is written."""
    from distok_cli.files import export as exp
    from distok_cli.files import tokenfile

    target = exp.TARGETS[check_export_target(to)]
    loaded = [t if isinstance(t, Token) else tokenfile.load(t) for t in tokens]
    jobs = exp.plan(loaded, target, Path(dest), name, dtype, overwrite, tokenfile.to_bytes, base)
    return [
        Exported(path, tok.exported["name"], target.usage(path, tok.exported["name"], exp.base_of(tok)))
        for (tok, _, _), path in zip(jobs, exp.write(jobs, overwrite))
    ]


def check_export_target(to: str) -> str:
    """``to`` if it is an export target (comfyui, a1111, invokeai, diffusers); else the one-line refusal."""
    from distok_cli.files import export as exp

    if to not in exp.TARGETS:
        raise BadInput(f"--to must be {', '.join(list(exp.TARGETS)[:-1])} or {list(exp.TARGETS)[-1]}, got {to!r}")
    return to


def gallery(
    items: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    thumb: int = 192,
    overwrite: bool = False,
    bar: Bar | None = None,
) -> tuple[str, int, int]:
    """One static page (no network) over token files, rendered PNGs and folders; nearest classes from
    ``model`` (default: the default model, if there is one). Returns (path, tokens, renders)."""
    from distok_cli.files import checkpoint, config, safety
    from distok_cli.jobs import gallery as gal

    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"-o {output}: a gallery is an .html file")
    safety.check_new_path([output], overwrite)
    ckpt = None
    if model:
        ckpt = checkpoint.load(model)
    else:
        try:
            ckpt = checkpoint.load(config.choose_model(None).path)
        except BadInput:
            ckpt = None  # no default model: the page says how to get nearest classes
    if ckpt is not None:
        log.info(f"nearest classes from {ckpt.path}")
    with (bar or silent)("building gallery", None) as advance:
        text, n_tokens, n_images = gal.build([str(i) for i in items], output, ckpt, thumb, progress=advance)
    safety.atomic_write(output, text.encode("utf-8"), overwrite)
    return str(output), n_tokens, n_images


def default_model() -> str:
    """The default model's path (``distok model``); :class:`DistokError` when there is none."""
    from distok_cli.files import config

    current = config.default_model()
    if current is None:
        raise DistokError("no default model (set one with `distok model RUN`; `distok train` and `distok demo` set it)")
    return current


def set_default_model(run: str | os.PathLike[str] | None) -> Path | None:
    """Make ``run`` the default model (after checking it is a readable model), or forget it (None)."""
    from distok_cli.files import checkpoint, config

    if run is not None:
        checkpoint.load(run)  # refuse anything that is not a readable model
    return config.set_default_model(None if run is None else str(run))


def choose_model(option: str | None) -> tuple[Any, str, str]:
    """The model a command uses: ``option`` (``-m``), else ``$DISTOK_MODEL``, else the default. Returns
    (checkpoint, path, how it was chosen, in words)."""
    from distok_cli.files import checkpoint, config

    choice = config.choose_model(option)
    ckpt = checkpoint.load(choice.path)
    origin = {"-m": "-m", config.ENV_MODEL: f"${config.ENV_MODEL}", "default": "the default; `distok model` changes it"}
    return ckpt, choice.path, origin[choice.origin]

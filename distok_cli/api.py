"""distok's Python API, the surface the CLI itself stands on: ``from distok_cli import load, Token, inject``.

    >>> model = load("runs/k21")                                  # a run folder or model.safetensors
    >>> token = model.encode({"pig": 0.55, "sheep": 0.25, "snake": 0.2})
    >>> token.save("monster.distok")
    >>> tokens = model.sample(8, prior="cauchy", seed=0)
    >>> sweep = model.sweep("pig:sheep", steps=9)                 # tokens along a path, in order
    >>> inject(pipe, token, "<monster>")                          # into a diffusers pipeline you have

``load``, ``Model.encode``, ``Model.sample`` and ``Model.sweep`` are numpy only (no torch import);
``inject`` and estimation need torch. Bad input raises :class:`BadInput` (the CLI's exit 2) with a
one-line message; every distok error is a :class:`DistokError`. The names in ``__all__`` are the
promise: they keep their meaning across minor versions (CHANGELOG says when one changes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput, DistokError
from distok_cli.files.tokenfile import Token
from distok_cli.method.sweep import Sweep

__all__ = ["BadInput", "DistokError", "Model", "Sweep", "Token", "inject", "load"]


@dataclass
class Model:
    """A trained DisTok model (its checkpoint), ready to make tokens: one MLP forward each, numpy only."""

    checkpoint: Any
    path: str

    @property
    def classes(self) -> list[str]:
        return self.checkpoint.classes

    @property
    def space(self) -> Any:
        """The token space (encoder, fingerprint; for SDXL its parts ``clip_l`` and ``clip_g``)."""
        return self.checkpoint.space

    @property
    def hash(self) -> str:
        return self.checkpoint.hash

    def encode(self, distribution: Mapping[str, float] | str, normalize: bool = True) -> Token:
        """The token of a class distribution: ``{"pig": 0.55, "sheep": 0.45}`` or ``"pig:0.55,sheep:0.45"``.
        Keys may also be token files (composition). Weights are normalised to sum to 1 unless ``normalize`` is
        False."""
        from distok_cli.files import distributions as dists
        from distok_cli.method import generate

        weights = dists.parse_spec(distribution) if isinstance(distribution, str) else {
            str(k): dists.weight(str(k), v) for k, v in distribution.items()}
        return generate.encode(self.checkpoint, weights, normalize=normalize)

    def sample(self, n: int = 8, prior: str = "gaussian", seed: int = 0, scale: float = 1.0) -> list[Token]:
        """``n`` tokens from random latents (gaussian, laplace or cauchy); token i of a seed never depends on n."""
        return list(self.samples(n, prior, seed, scale))

    def samples(self, n: int = 8, prior: str = "gaussian", seed: int = 0, scale: float = 1.0) -> Iterator[Token]:
        """:meth:`sample`, one token at a time (memory stays flat in ``n``); arguments are checked at once."""
        from distok_cli.method import generate

        return generate.sample(self.checkpoint, n, prior, scale, seed)

    def sweep(self, *ends: Any, steps: int = 9, grid: int | None = None, slerp: bool = False) -> Sweep:
        """Tokens along a path, in order (``Sweep.tokens``; ``Sweep.labels``, ``Sweep.smoothness``):

        - ``sweep("pig:sheep", steps=9)``: from all pig to all sheep;
        - ``sweep({"pig": .55, "sheep": .45}, "cat:1", steps=7)``: from one distribution to another;
        - ``sweep("pig:sheep:snake", grid=5)``: the triangle of three-class mixtures (15 tokens);
        - ``sweep(token_a, token_b, steps=8, slerp=True)`` (tokens or token files): through this model's latent
          space when both come from it, else through token space (``Sweep.kind`` says which).
        """
        from distok_cli.files import distributions as dists
        from distok_cli.files import tokenfile
        from distok_cli.method import sweep as sw

        ckpt = self.checkpoint
        if len(ends) == 1 and isinstance(ends[0], str) and sw.corners(ends[0]):
            names = sw.corners(ends[0]) or []
            if len(names) == 3:
                if grid is None:
                    raise BadInput("three corners (a:b:c) make a triangle: give grid, e.g. --grid 5")
                return sw.triangle(ckpt, names, grid)
            if len(names) != 2:
                raise BadInput(f"{ends[0]!r}: give two classes (a:b) for a line or three (a:b:c) for a triangle")
            if grid is not None:
                raise BadInput("grid is for three corners (a:b:c); a line between two classes takes steps")
            sw.check_classes(ckpt, names)
            return sw.weights(ckpt, {names[0]: 1.0}, {names[1]: 1.0}, steps)
        if len(ends) != 2:
            raise BadInput(f"a sweep has one corner spec (a:b or a:b:c) or two ends, got {len(ends)}")
        if grid is not None:
            raise BadInput("grid is for three corners (a:b:c); between two ends give steps")
        is_token = [isinstance(e, Token) or (isinstance(e, (str, os.PathLike)) and str(e).endswith(tokenfile.TOKEN_SUFFIXES))
                    for e in ends]
        if all(is_token):
            a, b = (e if isinstance(e, Token) else tokenfile.load(e) for e in ends)
            return sw.between(ckpt, a, b, steps, slerp)
        if any(is_token):
            raise BadInput("give two distributions or two token files as the ends, not one of each")
        if slerp:
            raise BadInput("slerp is for sweeps between tokens; a weights sweep is linear in the weights")
        a, b = (dists.parse_spec(e) if isinstance(e, str) else dict(e) for e in ends)
        return sw.weights(ckpt, a, b, steps)


def load(run: str | os.PathLike[str] | None = None) -> Model:
    """A trained model: a run folder or its ``model.safetensors``; ``None``: ``$DISTOK_MODEL`` or the default
    model (``distok model``), as the CLI chooses."""
    from distok_cli.files import checkpoint, config

    path = config.choose_model(str(run) if run is not None else None).path
    return Model(checkpoint.load(path), path)


def inject(pipe: Any, token: Token | str | os.PathLike[str], name: str) -> str:
    """Add ``token`` (a :class:`Token` or a token file) to a diffusers pipeline as the prompt word ``name``:
    SD 1.x, the Kandinsky 2.1 prior (or a combined Kandinsky pipeline), or SDXL (a two-part token, one part
    per text encoder). Refuses a token of another encoder or layout. Returns ``name``."""
    from distok_cli.backends.inject import inject as _inject
    from distok_cli.files import tokenfile

    tok = token if isinstance(token, Token) else tokenfile.load(Path(token))
    return _inject(pipe, tok, name)

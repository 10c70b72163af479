"""distok's Python API, the surface the CLI itself stands on: ``from distok_cli import load, Token, inject``.

    >>> model = load("runs/k21")                                  # a run folder or model.safetensors
    >>> token = model.encode({"pig": 0.55, "sheep": 0.25, "snake": 0.2})
    >>> token.save("monster.distok")
    >>> tokens = model.sample(8, prior="cauchy", seed=0)
    >>> sweep = model.sweep("pig:sheep", steps=9)                 # tokens along a path, in order
    >>> inject(pipe, token, "<monster>")                          # into a diffusers pipeline you have
    >>> run = train("minilm-animals", "runs/minilm")              # what `distok train` does, lock and signals included
    >>> rendered = render([token], ["a watercolor of a <>"], output="renders")

``load``, ``Model.encode``, ``Model.sample`` and ``Model.sweep`` are numpy only (no torch import);
``inject``, ``train``, ``render`` and estimation need torch. Long work takes ``bar``: a factory of progress
contexts, ``bar(description, total)``, whose value is called as ``advance(n, info)`` (the CLI passes its
rich bar; the default is silence). Bad input raises :class:`BadInput` (the CLI's exit 2) with a
one-line message; every distok error is a :class:`DistokError`. The names in ``__all__`` are the
promise: they keep their meaning across minor versions (CHANGELOG says when one changes).
"""

from __future__ import annotations

from distok_cli.api.model import Model, inject, load
from distok_cli.api.rendering import Rendered, render, rerender
from distok_cli.api.training import Trained, train
from distok_cli.errors import BadInput, DistokError, StoppedBySignal
from distok_cli.files.tokenfile import Token
from distok_cli.method.sweep import Sweep

__all__ = [
    "BadInput",
    "DistokError",
    "Model",
    "Rendered",
    "StoppedBySignal",
    "Sweep",
    "Token",
    "Trained",
    "inject",
    "load",
    "render",
    "rerender",
    "train",
]

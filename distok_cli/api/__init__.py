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

from distok_cli.api.evaluating import check_estimator as check_estimator
from distok_cli.api.evaluating import estimate as estimate
from distok_cli.api.evaluating import evaluate as evaluate
from distok_cli.api.evaluating import evaluation_summary as evaluation_summary
from distok_cli.api.making import HOW as HOW
from distok_cli.api.making import MAX_REFINE as MAX_REFINE
from distok_cli.api.making import check_grid as check_grid
from distok_cli.api.making import check_sample as check_sample
from distok_cli.api.making import check_steps as check_steps
from distok_cli.api.making import encode_to as encode_to
from distok_cli.api.making import estimate_sweep as estimate_sweep
from distok_cli.api.making import from_pool as from_pool
from distok_cli.api.making import read_spec as read_spec
from distok_cli.api.making import safe_name as safe_name
from distok_cli.api.making import sample_files as sample_files
from distok_cli.api.making import sample_name as sample_name
from distok_cli.api.making import sweep_files as sweep_files
from distok_cli.api.making import sweep_paths as sweep_paths
from distok_cli.api.making import to_bytes as to_bytes
from distok_cli.api.making import write_sweep_plot as write_sweep_plot
from distok_cli.api.making import write_tokens as write_tokens
from distok_cli.api.model import Model, inject, load
from distok_cli.api.rendering import Rendered, render, rerender
from distok_cli.api.tokens import Exported as Exported
from distok_cli.api.tokens import Inspected as Inspected
from distok_cli.api.tokens import check_export_target as check_export_target
from distok_cli.api.tokens import choose_model as choose_model
from distok_cli.api.tokens import default_model as default_model
from distok_cli.api.tokens import describe as describe
from distok_cli.api.tokens import diff as diff
from distok_cli.api.tokens import export as export
from distok_cli.api.tokens import gallery as gallery
from distok_cli.api.tokens import inspect as inspect
from distok_cli.api.tokens import set_default_model as set_default_model
from distok_cli.api.tokens import source_distribution as source_distribution
from distok_cli.api.tokens import sweep_text as sweep_text
from distok_cli.api.tokens import top as top
from distok_cli.api.tour import demo as demo
from distok_cli.api.training import Trained, train
from distok_cli.errors import BadInput, DistokError, StoppedBySignal
from distok_cli.files.safety import check_new_path as check_new_path
from distok_cli.files.safety import check_target as check_target
from distok_cli.files.tokenfile import TOKEN_SUFFIXES as TOKEN_SUFFIXES
from distok_cli.files.tokenfile import Token
from distok_cli.limits import check_prompt as check_prompt
from distok_cli.method.sweep import Sweep

# The promised names (distok_cli.__all__ lists the same, lazily; a test keeps them equal). The rest above
# is what the commands call, public too, without that promise.
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

"""What a backend is: its declaration (:class:`Backend`) and the two objects it makes, typed as Protocols.

A backend module (``kandinsky``, ``sd``, ``sdxl``, ``flux``, ``minilm``) declares ``BACKEND`` and offers
``load_text_side(ref, device, torch_dtype)``, ``text_ref(cfg)``, ``tokenizer_folders(cfg)`` and, when
it renders, ``make_renderer(cfg, device, dtype, offload, compile)``. :mod:`distok_cli.backends.registry`
is the one place that knows the modules; everything else asks it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Backend:
    """A base model's token space, as the rest of distok sees it.

    ``parts``: the token's named parts in order (``()``: one vector); ``width``: the token's width in the
    real model (one vector; with parts each part has its own, set by the encoder); ``renders``: whether
    distok renders it; ``estimators``: the recipe estimator kinds it offers; ``default_recipe``: the recipe
    a token with this backend's parts renders with when neither the token nor ``--recipe`` names one;
    ``cuda_dtype``: what ``--dtype auto`` loads on CUDA (FLUX: bfloat16, since T5 overflows in float16).
    """

    name: str
    title: str
    parts: tuple[str, ...]
    width: int | None
    renders: bool
    estimators: tuple[str, ...]
    default_recipe: str | None = None
    cuda_dtype: str = "float16"


class TextSide(Protocol):
    """A token space's text side: the encoder(s) a token goes into, with the token injected.

    ``encode`` is E (differentiable in ``vectors``); ``class_embeddings`` the t_i of class names;
    ``inject`` puts tokens into the placeholder rows while a pipeline runs."""

    dim: int
    space: Any

    def encode(self, prompts: list[str], vectors: Any = None) -> Any: ...
    def class_embeddings(self, classes: list[str]) -> Any: ...
    def inject(self, vectors: Any) -> AbstractContextManager[None]: ...
    def check_fits(self, filled_prompts: list[str]) -> None: ...
    def check_token(self, token: Any) -> None: ...


class Renderer(Protocol):
    """Token vectors + prompts + seeds → PIL images (one per row), on a backend's pipeline."""

    backend: str
    text: TextSide
    models: dict[str, str]
    compiled: bool

    def render(
        self, vectors: Any, prompts: list[str], seeds: list[int], s: Any, paths: list[str | None] | None = None
    ) -> list[Any]: ...

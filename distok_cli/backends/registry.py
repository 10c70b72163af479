"""The backends distok knows, by name: the one place that imports every backend module.

A backend is one module (:mod:`.kandinsky`, :mod:`.sd`, :mod:`.sdxl`, :mod:`.flux`, :mod:`.minilm`) that declares a
:class:`~distok_cli.backends.protocols.Backend` and loads its text side and renderer. Everything outside
``backends/`` asks this registry: which text side a recipe trains on, which renderer renders it, which
tokens a renderer reads. A new base model is a new module added to :data:`MODULES`, plus its recipes.
"""

from __future__ import annotations

from types import ModuleType

from distok_cli.backends import flux, kandinsky, minilm, sd, sdxl
from distok_cli.backends.loading import placement
from distok_cli.backends.protocols import Backend, Renderer, TextSide
from distok_cli.errors import BadInput
from distok_cli.files.recipes import Recipe, RenderConfig

MODULES: dict[str, ModuleType] = {m.BACKEND.name: m for m in (kandinsky, sd, sdxl, flux, minilm)}


def get(name: str) -> Backend:
    if name not in MODULES:
        raise BadInput(f"unknown backend {name!r} (known: {', '.join(MODULES)})")
    return MODULES[name].BACKEND


def all_backends() -> list[Backend]:
    return [m.BACKEND for m in MODULES.values()]


def _text_module(recipe: Recipe) -> ModuleType:
    """The backend whose text side the recipe trains on: its ``text_encoder``'s (MiniLM) or its renderer's."""
    ref = recipe.text_encoder
    if ref and (ref.startswith("minilm") or "MiniLM" in ref):
        return minilm
    return MODULES[recipe.render.backend]


def load_text_side(recipe: Recipe, device: str, dtype: str = "auto") -> TextSide:
    """The recipe's text side alone (tokenizer(s) + text encoder(s)): training and the text estimator."""
    module = _text_module(recipe)
    device, torch_dtype = placement(device, dtype, module.BACKEND.cuda_dtype)
    ref = recipe.text_encoder or module.text_ref(recipe.render)
    return module.load_text_side(ref, device, torch_dtype)


def make_renderer(
    cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False, compile: bool = False
) -> Renderer:
    backend = get(cfg.backend)
    if not backend.renders:
        raise BadInput(f"{backend.title} does not render")
    return MODULES[cfg.backend].make_renderer(cfg, device, dtype, offload, compile)


def tokenizer_folders(cfg: RenderConfig) -> list[tuple[str, str]]:
    """(model reference, tokenizer subfolder) of every text encoder the recipe's renderer puts a token into."""
    return MODULES[cfg.backend].tokenizer_folders(cfg)


def single_vector_widths() -> list[int]:
    """The widths of one-vector tokens some renderer reads (768: CLIP ViT-L/14's)."""
    return sorted({b.width for b in all_backends() if b.renders and not b.parts and b.width})


def renders(parts: tuple[str, ...], dim: int) -> bool:
    """Whether some renderer reads a token with these part names (``()``: one vector) and this width."""
    return any(b.renders and b.parts == parts and (parts or b.width == dim) for b in all_backends())


def for_parts(parts: tuple[str, ...]) -> Backend | None:
    """The backend whose tokens have these named parts (None for one vector, which several share)."""
    return next((b for b in all_backends() if parts and b.parts == parts), None)


def parts_of(name: str) -> tuple[str, ...]:
    return get(name).parts

"""Load only a text side (tokenizer + text encoder), for training with a text-side estimator.

The same model reference the renderer uses: for Kandinsky 2.1 the prior's ``text_encoder``/``tokenizer``
subfolders (``CLIPTextModelWithProjection``), for SD 1.x the pipeline's (``CLIPTextModel``), for SDXL
both of the pipeline's (:mod:`distok_cli.backends.sdxl`), or the recipe's ``text_encoder`` when set.
"""

from __future__ import annotations

from typing import Any

from distok_cli.backends.loading import from_pretrained, placement
from distok_cli.backends.textside import TextSide
from distok_cli.files.recipes import Recipe


def load_text_side(recipe: Recipe, device: str, dtype: str = "auto") -> TextSide:
    device, torch_dtype = placement(device, dtype)
    if recipe.render.backend == "sdxl" and not recipe.text_encoder:
        from distok_cli.backends.sdxl import load_text_side as load_sdxl

        return load_sdxl(recipe.render.sdxl, device, torch_dtype)  # type: ignore[return-value]
    ref = recipe.text_encoder or (recipe.render.prior if recipe.render.backend == "kandinsky21" else recipe.render.sd)
    if ref.startswith("minilm") or "MiniLM" in ref:
        from distok_cli.backends.minilm import load_minilm

        return load_minilm(ref, device)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # not for MiniLM: 2 s of imports

    cls: Any = CLIPTextModelWithProjection if recipe.render.backend == "kandinsky21" else CLIPTextModel
    tok = from_pretrained(CLIPTokenizer, ref, subfolder="tokenizer")
    enc = from_pretrained(cls, ref, subfolder="text_encoder", dtype=torch_dtype).to(device)
    return TextSide(tok, enc, ref)

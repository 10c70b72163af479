"""SDXL: a token space with two named parts, and a renderer through diffusers' ``StableDiffusionXLPipeline``.

A token is ``[clip_l | clip_g]``: a row for CLIP ViT-L/14 (``pipe.text_encoder``, 768) and one for
OpenCLIP ViT-bigG/14 (``pipe.text_encoder_2``, 1280), which is the layout of an SDXL textual-inversion
file. Each part is injected into its own encoder by that encoder's :class:`TextSide` hook, so one batch
holds many different tokens, as on Kandinsky.

**The text embedding E (training, the text-side estimator, eval).** SDXL conditions its UNet on two
things: every position's penultimate hidden state of both encoders, concatenated (cross-attention), and
encoder 2's projected pooled output (the added "text_time" condition). E covers both::

    E(prompt) = [ unit(mean over positions 1..EOS of [h_L | h_G]) | unit(pooled_G) ] / √2

so ``cos(E(a), E(b)) = ½ cos(per-position means) + ½ cos(pooled)``. The pooled vector alone would
leave ``clip_l`` without a gradient (SDXL does not use CLIP-L's pooled output), and the per-position part
alone would ignore the second condition. BOS is left out of the mean (its state is the same for every
prompt), positions after the first EOS too (padding, which SDXL's two tokenizers fill differently). L_mix,
L_cst and the matching task all use this E.

Nothing outside ``backends/`` knows these names: ``method/`` and ``jobs/`` see a token space with parts.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from typing import Any

from distok_cli.backends.loading import from_pretrained, placement
from distok_cli.backends.pipelines import compile_unet, place, run_with_tokens, set_scheduler
from distok_cli.backends.protocols import Backend
from distok_cli.backends.textside import PartedTextSide, TextSide
from distok_cli.files.recipes import RenderConfig

#: (part name, pipeline tokenizer folder, pipeline text-encoder folder), in the token's order.
PARTS = (("clip_l", "tokenizer", "text_encoder"), ("clip_g", "tokenizer_2", "text_encoder_2"))
BACKEND = Backend(
    name="sdxl",
    title="SDXL",
    parts=tuple(p for p, _, _ in PARTS),
    width=None,
    renders=True,
    estimators=("blip-itm", "blip-vqa", "text"),
    default_recipe="sdxl-animals",
)
#: SDXL reads the penultimate layer of both encoders (diffusers' ``hidden_states[-2]``, clip_skip 0).
HIDDEN_LAYER = -2


class SDXLTextSide(PartedTextSide):
    """Both SDXL text encoders as one token space with parts ``clip_l`` and ``clip_g``; E: see the module."""

    def __init__(self, tokenizers: tuple[Any, Any], encoders: tuple[Any, Any], ref: str) -> None:
        sides = tuple(TextSide(t, e, ref, sub) for t, e, (_, _, sub) in zip(tokenizers, encoders, PARTS))
        super().__init__(sides, tuple(name for name, _, _ in PARTS), ref)

    # ----------------------------------------------------------------------------------- E
    def encode(self, prompts: list[str], vectors: Any = None) -> Any:
        """E(prompt), [B, h_L + h_G + pooled_G] (SDXL: 768 + 1280 + 1280), unit norm: see the module
        docstring; differentiable in ``vectors``."""
        import torch
        import torch.nn.functional as F

        parts = self._split(vectors) if vectors is not None else [None, None]
        means, pooled = [], None
        for side, part in zip(self.sides, parts):
            ids, _ = side._inputs(prompts)
            ctx = side.inject(part) if part is not None else ExitStack()
            with ctx:
                out = side.encoder(input_ids=ids, output_hidden_states=True)
            h = out.hidden_states[HIDDEN_LAYER]
            pos = torch.arange(ids.shape[1], device=ids.device)
            eos = (ids == side.tokenizer.eos_token_id).int().argmax(dim=-1)
            keep = ((pos[None] >= 1) & (pos[None] <= eos[:, None])).to(h.dtype)[..., None]
            means.append((h * keep).sum(1) / keep.sum(1).clamp(min=1))
            pooled = getattr(out, "text_embeds", None)
        assert pooled is not None  # encoder 2 is a CLIPTextModelWithProjection
        per_position = F.normalize(torch.cat(means, -1), dim=-1)
        return torch.cat([per_position, F.normalize(pooled, dim=-1)], -1) / math.sqrt(2.0)


def text_ref(cfg: RenderConfig) -> str:
    return cfg.sdxl


def load_text_side(ref: str, device: str, torch_dtype: Any) -> SDXLTextSide:
    """Only the two tokenizers and text encoders of the SDXL pipeline at ``ref`` (training, text estimator)."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    toks = tuple(from_pretrained(CLIPTokenizer, ref, subfolder=t) for _, t, _ in PARTS)
    encs = (
        from_pretrained(CLIPTextModel, ref, subfolder="text_encoder", dtype=torch_dtype).to(device),
        from_pretrained(CLIPTextModelWithProjection, ref, subfolder="text_encoder_2", dtype=torch_dtype).to(device),
    )
    return SDXLTextSide(toks, encs, ref)  # type: ignore[arg-type]


def tokenizer_folders(cfg: RenderConfig) -> list[tuple[str, str]]:
    """(model reference, tokenizer subfolder) of both text encoders a render puts the token's parts into."""
    return [(cfg.sdxl, t) for _, t, _ in PARTS]


def make_renderer(
    cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False, compile: bool = False
) -> SDXLRenderer:
    return SDXLRenderer(cfg, device, dtype, offload, compile=compile)


class SDXLRenderer:
    backend = "sdxl"

    def __init__(
        self,
        cfg: RenderConfig,
        device: str = "auto",
        dtype: str = "auto",
        offload: bool = False,
        compile: bool = False,
        pipeline: Any = None,
    ) -> None:
        """Load ``cfg.sdxl`` with from_pretrained (or use ``pipeline``, built in memory by the GPU benchmark)."""
        self.device, self.dtype = placement(device, dtype)
        from diffusers import StableDiffusionXLPipeline

        self.cfg = cfg
        if pipeline is None:
            self.pipe = from_pretrained(StableDiffusionXLPipeline, cfg.sdxl, dtype=self.dtype)
        else:
            self.pipe = pipeline.to(dtype=self.dtype)
        set_scheduler(self.pipe, cfg.scheduler)
        place((self.pipe,), self.device, offload)
        self.compiled = compile
        if compile:
            compile_unet(self.pipe)
        self.text = SDXLTextSide(
            (self.pipe.tokenizer, self.pipe.tokenizer_2), (self.pipe.text_encoder, self.pipe.text_encoder_2), cfg.sdxl
        )
        self.models = {"sdxl": cfg.sdxl}

    def render(
        self, vectors: Any, prompts: list[str], seeds: list[int], s: Any, paths: list[str | None] | None = None
    ) -> list[Any]:
        """One image per (vector, prompt, seed): each part reaches its own encoder through the hooks."""
        return run_with_tokens(self.pipe, self.text, vectors, prompts, seeds, s)

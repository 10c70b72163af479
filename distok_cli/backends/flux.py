"""FLUX.1: a token space with two named parts, and a renderer through diffusers' ``FluxPipeline``.

A token is ``[clip_l | t5]``: a row for CLIP ViT-L/14 (``pipe.text_encoder``, 768) and one for T5-XXL's
encoder (``pipe.text_encoder_2``, 4096), the two keys diffusers' advanced FLUX training script writes. Each
part is injected into its own encoder by that encoder's :class:`TextSide` hook, so one batch holds many
different tokens, as on SDXL.

**The text embedding E (training, the text-side estimator, eval).** FLUX reads two things from its text
encoders: CLIP-L's **pooled output** alone (``pooled_projections``, which modulates every block) and T5's
**last hidden states** (the sequence its joint attention reads). E covers both::

    E(prompt) = [ unit(pooled CLIP-L) | unit(mean over the prompt's positions of T5's last states) ] / √2

so ``cos(E(a), E(b)) = ½ cos(pooled) + ½ cos(T5 means)``. CLIP-L's per-position states are left out
because FLUX never reads them; the pooled vector alone would leave ``t5`` without a gradient, and T5
alone would ignore the modulation. T5's mean is taken over the prompt's own positions (EOS included),
with the padding masked: FLUX runs T5 over ``max_sequence_length`` padded positions without a mask,
which costs 20-50× more per prompt in training and moves the states of the words only through padding.
CLIP-L pools at its EOS token (the legacy ``eos_token_id == 2`` of FLUX's CLIP config is corrected, as
for Kandinsky: otherwise the pool lands on the added token). L_mix, L_cst and the matching task all use
this E.

Nothing outside ``backends/`` knows these names: ``method/`` and ``jobs/`` see a token space with parts.
"""

from __future__ import annotations

import math
from typing import Any

from distok_cli.backends.loading import from_pretrained, placement
from distok_cli.backends.pipelines import COMPILE, place, run_with_tokens
from distok_cli.backends.protocols import Backend
from distok_cli.backends.textside import PartedTextSide, TextSide
from distok_cli.errors import BadInput
from distok_cli.files.recipes import RenderConfig

#: (part name, pipeline tokenizer folder, pipeline text-encoder folder, pooling), in the token's order.
PARTS = (("clip_l", "tokenizer", "text_encoder", "clip"), ("t5", "tokenizer_2", "text_encoder_2", "mean"))
BACKEND = Backend(
    name="flux",
    title="FLUX.1",
    parts=tuple(p for p, _, _, _ in PARTS),
    width=None,
    renders=True,
    estimators=("blip-itm", "blip-vqa", "text"),
    default_recipe="flux-animals",
    cuda_dtype="bfloat16",  # T5-XXL overflows in float16
)


class FluxTextSide(PartedTextSide):
    """FLUX's two text encoders as one token space with parts ``clip_l`` and ``t5``; E: see the module."""

    def __init__(self, tokenizers: tuple[Any, Any], encoders: tuple[Any, Any], ref: str) -> None:
        sides = tuple(
            TextSide(t, e, ref, sub, pooling=pool) for t, e, (_, _, sub, pool) in zip(tokenizers, encoders, PARTS)
        )
        super().__init__(sides, tuple(name for name, _, _, _ in PARTS), ref)

    def encode(self, prompts: list[str], vectors: Any = None) -> Any:
        """E(prompt), [B, h_L + h_T5], unit norm: see the module docstring; differentiable in ``vectors``."""
        import torch
        import torch.nn.functional as F

        parts = self._split(vectors) if vectors is not None else [None, None]
        halves = [F.normalize(side.encode(prompts, part).float(), dim=-1) for side, part in zip(self.sides, parts)]
        return torch.cat(halves, -1) / math.sqrt(2.0)


def text_ref(cfg: RenderConfig) -> str:
    return cfg.flux


def load_text_side(ref: str, device: str, torch_dtype: Any) -> FluxTextSide:
    """Only the two tokenizers and text encoders of the FLUX pipeline at ``ref`` (training, text estimator)."""
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    toks = (
        from_pretrained(CLIPTokenizer, ref, subfolder="tokenizer"),
        from_pretrained(T5TokenizerFast, ref, subfolder="tokenizer_2"),
    )
    encs = (
        from_pretrained(CLIPTextModel, ref, subfolder="text_encoder", dtype=torch_dtype).to(device),
        from_pretrained(T5EncoderModel, ref, subfolder="text_encoder_2", dtype=torch_dtype).to(device),
    )
    return FluxTextSide(toks, encs, ref)


def tokenizer_folders(cfg: RenderConfig) -> list[tuple[str, str]]:
    """(model reference, tokenizer subfolder) of both text encoders a render puts the token's parts into."""
    return [(cfg.flux, t) for _, t, _, _ in PARTS]


def make_renderer(
    cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False, compile: bool = False
) -> FluxRenderer:
    return FluxRenderer(cfg, device, dtype, offload, compile=compile)


class FluxRenderer:
    backend = "flux"

    def __init__(
        self,
        cfg: RenderConfig,
        device: str = "auto",
        dtype: str = "auto",
        offload: bool = False,
        compile: bool = False,
        pipeline: Any = None,
    ) -> None:
        """Load ``cfg.flux`` with from_pretrained (or use ``pipeline``, built in memory by the GPU benchmark)."""
        if cfg.scheduler:
            raise BadInput(
                f"render.scheduler {cfg.scheduler!r}: FLUX samples with its own flow-matching scheduler (leave it empty)"
            )
        self.device, self.dtype = placement(device, dtype, BACKEND.cuda_dtype)
        from diffusers import FluxPipeline

        self.cfg = cfg
        if pipeline is None:
            self.pipe = from_pretrained(FluxPipeline, cfg.flux, dtype=self.dtype)
        else:
            self.pipe = pipeline.to(dtype=self.dtype)
        place((self.pipe,), self.device, offload)
        self.compiled = compile
        if compile:
            self.pipe.transformer.compile(**COMPILE)  # where a FLUX render spends its time
        self.text = FluxTextSide(
            (self.pipe.tokenizer, self.pipe.tokenizer_2), (self.pipe.text_encoder, self.pipe.text_encoder_2), cfg.flux
        )
        self.models = {"flux": cfg.flux}

    def render(
        self, vectors: Any, prompts: list[str], seeds: list[int], s: Any, paths: list[str | None] | None = None
    ) -> list[Any]:
        """One image per (vector, prompt, seed): each part reaches its own encoder through the hooks."""
        return run_with_tokens(
            self.pipe, self.text, vectors, prompts, seeds, s, max_sequence_length=self.cfg.max_sequence_length
        )

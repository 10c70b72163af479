"""Stable Diffusion 1.x, a backend (token: one 768-d CLIP ViT-L/14 row, the space SD 1.x shares).

Tokens reach the pipeline through diffusers' own ``load_textual_inversion``, so a token file loads exactly
as any textual-inversion embedding does. The text side alone is the pipeline's ``text_encoder``
(``CLIPTextModel``) and ``tokenizer``.
"""

from __future__ import annotations

from typing import Any

from distok_cli.backends.loading import from_pretrained, placement
from distok_cli.backends.pipelines import Settings, compile_unet, generators, place, set_scheduler
from distok_cli.backends.protocols import Backend
from distok_cli.backends.textside import TextSide
from distok_cli.files.recipes import RenderConfig

BACKEND = Backend(
    name="sd15",
    title="SD 1.x",
    parts=(),
    width=768,
    renders=True,
    estimators=("blip-itm", "blip-vqa", "text"),
    default_recipe=None,
)


def text_ref(cfg: RenderConfig) -> str:
    return cfg.sd


def tokenizer_folders(cfg: RenderConfig) -> list[tuple[str, str]]:
    """(model reference, tokenizer subfolder) of every text encoder a render puts the token into."""
    return [(cfg.sd, "tokenizer")]


def load_text_side(ref: str, device: str, torch_dtype: Any) -> TextSide:
    return TextSide.from_pipeline(ref, device, torch_dtype, projection=False)


def make_renderer(
    cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False, compile: bool = False
) -> SDRenderer:
    return SDRenderer(cfg, device, dtype, offload, compile=compile)


class SDRenderer:
    backend = "sd15"
    text: TextSide

    def __init__(
        self, cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False, compile: bool = False
    ) -> None:
        self.device, self.dtype = placement(device, dtype)  # quietens the libraries before they import
        from diffusers import StableDiffusionPipeline

        self.cfg = cfg
        self.pipe = from_pretrained(
            StableDiffusionPipeline, cfg.sd, dtype=self.dtype, safety_checker=None, requires_safety_checker=False
        )
        set_scheduler(self.pipe, cfg.scheduler)
        place((self.pipe,), self.device, offload)
        self.compiled = compile
        if compile:
            compile_unet(self.pipe)
        self.text = TextSide(self.pipe.tokenizer, self.pipe.text_encoder, cfg.sd)
        self.models = {"sd": cfg.sd}

    def render(
        self, vectors: Any, prompts: list[str], seeds: list[int], s: Settings, paths: list[str | None] | None = None
    ) -> list[Any]:
        import torch

        names = [f"<distok-ti-{i}>" for i in range(len(prompts))]
        sources: list[Any] = []
        for i, v in enumerate(vectors):
            path = paths[i] if paths else None
            sources.append(path if path else {"emb_params": torch.as_tensor(v, dtype=torch.float32).reshape(1, -1)})
        # diffusers' own loader: token files load unchanged, like any textual-inversion embedding.
        self.pipe.load_textual_inversion(sources, token=names)
        try:
            with torch.inference_mode():
                return self.pipe(
                    [p.replace("<>", n) for p, n in zip(prompts, names)],
                    height=s.size,
                    width=s.size,
                    num_inference_steps=s.steps,
                    guidance_scale=s.guidance,
                    generator=generators(seeds),
                ).images
        finally:
            self.pipe.unload_textual_inversion(tokens=names)

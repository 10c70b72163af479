"""Kandinsky 2.1: the paper's base model, a backend (token: one 768-d CLIP ViT-L/14 row).

The token goes into the prior's CLIP ViT-L/14 text encoder (via :class:`TextSide`); the decoder gets empty
prompts, because its XLM-R text side has no such token, and the image embedding carries the concept (as
ConceptLab does). The text side alone (training with the text estimator) is the prior's ``text_encoder``
(``CLIPTextModelWithProjection``) and ``tokenizer``.
"""

from __future__ import annotations

from typing import Any

from distok_cli.backends.loading import from_pretrained, placement
from distok_cli.backends.pipelines import Settings, compile_unet, generators, place, set_scheduler
from distok_cli.backends.protocols import Backend
from distok_cli.backends.textside import TextSide
from distok_cli.files.recipes import RenderConfig

BACKEND = Backend(
    name="kandinsky21",
    title="Kandinsky 2.1",
    parts=(),
    width=768,
    renders=True,
    estimators=("blip-itm", "blip-vqa", "text", "prior"),
    default_recipe="tiny",
)


def text_ref(cfg: RenderConfig) -> str:
    return cfg.prior


def tokenizer_folders(cfg: RenderConfig) -> list[tuple[str, str]]:
    """(model reference, tokenizer subfolder) of every text encoder a render puts the token into."""
    return [(cfg.prior, "tokenizer")]


def load_text_side(ref: str, device: str, torch_dtype: Any) -> TextSide:
    return TextSide.from_pipeline(ref, device, torch_dtype, projection=True)


def make_renderer(
    cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False, compile: bool = False
) -> KandinskyRenderer:
    return KandinskyRenderer(cfg, device, dtype, offload, compile=compile)


class KandinskyRenderer:
    backend = "kandinsky21"
    text: TextSide

    def __init__(
        self,
        cfg: RenderConfig,
        device: str = "auto",
        dtype: str = "auto",
        offload: bool = False,
        pipelines: tuple[Any, Any] | None = None,
        compile: bool = False,
    ) -> None:
        """Load ``cfg.prior``/``cfg.decoder`` with from_pretrained, or use ``pipelines`` already built
        (the GPU benchmark builds full-size random-weight pipelines in memory). ``compile``: see
        :func:`compile_unet`."""
        self.device, self.dtype = placement(device, dtype)  # quietens the libraries before they import
        from diffusers import KandinskyPipeline, KandinskyPriorPipeline

        self.cfg = cfg
        if pipelines is None:
            self.prior = from_pretrained(KandinskyPriorPipeline, cfg.prior, dtype=self.dtype)
            self.decoder = from_pretrained(KandinskyPipeline, cfg.decoder, dtype=self.dtype)
        else:
            self.prior, self.decoder = (p.to(dtype=self.dtype) for p in pipelines)
        set_scheduler(self.decoder, cfg.scheduler)
        place((self.prior, self.decoder), self.device, offload)
        self._freeze_constants(offload)
        self.compiled = compile
        if compile:
            compile_unet(self.decoder)
        self.text = TextSide(self.prior.tokenizer, self.prior.text_encoder, cfg.prior)
        self.models = {"prior": cfg.prior, "decoder": cfg.decoder}

    def _freeze_constants(self, offload: bool) -> None:
        """Serve the two constant inputs from memory and move the models that made them off the GPU.

        The decoder only ever gets empty prompts (the token lives in the image embedding), and the prior's
        negative image embedding is that of a black image. Each is computed once here, not per batch, so
        M-CLIP (XLM-R large) and the CLIP image encoder leave the GPU (unless offloading,
        which moves them anyway) and no batch runs them. The decoder's conditioning no longer depends on the
        batch size either.
        """
        import torch

        dec, prior = self.decoder, self.prior
        with torch.no_grad():
            emb, hidden, mask = dec._encode_prompt([""], dec._execution_device, 1, False)
            zero = prior.get_zero_embed(1, device=prior._execution_device)

        def encode_prompt(
            prompt: Any,
            device: Any,
            num_images_per_prompt: int,
            do_classifier_free_guidance: bool,
            negative_prompt: Any = None,
        ) -> tuple[Any, Any, Any]:
            prompts = prompt if isinstance(prompt, list) else [prompt]
            if any(prompts) or negative_prompt:
                raise RuntimeError("distok's Kandinsky decoder takes empty prompts only")
            n = len(prompts) * num_images_per_prompt * (2 if do_classifier_free_guidance else 1)
            return emb.repeat(n, 1).to(device), hidden.repeat(n, 1, 1).to(device), mask.repeat(n, 1).to(device)

        def zero_embed(batch_size: int = 1, device: Any = None) -> Any:
            return zero.repeat(batch_size, 1).to(device or zero.device)

        dec._encode_prompt = encode_prompt
        prior.get_zero_embed = zero_embed
        if not offload:
            dec.text_encoder.to("cpu")
            prior.image_encoder.to("cpu")
            if str(self.device).startswith("cuda"):
                torch.cuda.empty_cache()

    def image_embeds(self, vectors: Any, prompts: list[str], seeds: list[int], s: Settings) -> Any:
        """The prior's CLIP image embeddings for each (token, prompt, seed): [B, 768] (and negatives)."""
        import torch

        filled = [TextSide.fill(p) for p in prompts]
        self.text.check_fits(filled)
        with torch.inference_mode(), self.text.inject(vectors):
            out = self.prior(
                filled,
                num_inference_steps=s.prior_steps,
                guidance_scale=s.prior_guidance,
                generator=generators(seeds),
            )
        return out.image_embeds, out.negative_image_embeds

    def render(
        self, vectors: Any, prompts: list[str], seeds: list[int], s: Settings, paths: list[str | None] | None = None
    ) -> list[Any]:
        """One image per (vector, prompt, seed). ``paths`` (token files, for loaders that read files) is unused:
        the token reaches the prior's text encoder through :meth:`TextSide.inject`."""
        import torch

        emb, neg = self.image_embeds(vectors, prompts, seeds, s)
        with torch.inference_mode():
            return self.decoder(
                [""] * len(prompts),
                image_embeds=emb,
                negative_image_embeds=neg,
                height=s.size,
                width=s.size,
                num_inference_steps=s.steps,
                guidance_scale=s.guidance,
                generator=generators(seeds),
            ).images

"""Renderers: token vectors + prompt templates + seeds → PIL images, on Kandinsky 2.1 or SD 1.x (SDXL:
:mod:`distok_cli.backends.sdxl`).

Kandinsky 2.1: the token goes into the prior's CLIP ViT-L/14 text encoder (via :class:`TextSide`); the
decoder gets empty prompts, because its XLM-R text side has no such token, and the image embedding
carries the concept (as ConceptLab does). SD 1.x: tokens go through diffusers' own
``load_textual_inversion``, since SD 1.x shares the CLIP-L token space.

Every image has its own CPU ``torch.Generator`` seeded with its seed, so an image depends on
(token, prompt, seed, settings) and not on what else shares its batch.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from distok_cli.backends.loading import from_pretrained, placement
from distok_cli.backends.textside import TextSide
from distok_cli.errors import BadInput
from distok_cli.files.recipes import MIN_PRIOR_STEPS, MIN_SIZE, RenderConfig

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "dpm": "DPMSolverMultistepScheduler",
}


@dataclass(frozen=True)
class Settings:
    prior_steps: int
    steps: int
    prior_guidance: float
    guidance: float
    size: int
    batch_size: int

    @classmethod
    def from_config(cls, cfg: RenderConfig, **over: Any) -> Settings:
        base = {k: getattr(cfg, k) for k in cls.__dataclass_fields__}
        base.update({k: v for k, v in over.items() if v is not None})
        s = cls(**base)
        if s.size < MIN_SIZE or s.steps < 1 or s.batch_size < 1 or s.guidance < 0:
            raise BadInput(f"--size must be at least {MIN_SIZE}; --steps, --batch-size at least 1; --guidance not negative")
        if s.prior_steps < MIN_PRIOR_STEPS:
            raise BadInput(f"--prior-steps must be at least {MIN_PRIOR_STEPS}")
        return s


def _generators(seeds: list[int]) -> list[Any]:
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def _set_scheduler(pipe: Any, name: str) -> None:
    if not name:
        return
    import diffusers

    cls = getattr(diffusers, SCHEDULERS[name])
    pipe.scheduler = cls.from_config(pipe.scheduler.config)


# torch.compile settings for ``--compile``: static shapes, so each batch shape compiles once (rendering.run
# pads a short last batch to the full batch size). Tests swap the backend for "aot_eager" (no C compiler).
COMPILE: dict[str, Any] = {"dynamic": False}


def compile_unet(pipe: Any) -> None:
    """Compile the pipeline's UNet in place (``nn.Module.compile``): the pipeline keeps its own module.

    The UNet is where a render spends its time (50 of the 75 model calls, the largest model); on one
    H100 the anchor measured 38.7 → 16.3 ms per decoder step. The first batch pays the compilation.
    """
    pipe.unet.compile(**COMPILE)


def _place(pipes: tuple[Any, ...], device: str, offload: bool) -> None:
    """Silence the pipelines' own progress bars; move them to the device, or offload them (CUDA only)."""
    for pipe in pipes:
        pipe.set_progress_bar_config(disable=True)
        if offload and device.startswith("cuda"):
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)


class KandinskyRenderer:
    backend = "kandinsky21"

    def __init__(self, cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False,
                 pipelines: tuple[Any, Any] | None = None, compile: bool = False) -> None:
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
        _set_scheduler(self.decoder, cfg.scheduler)
        _place((self.prior, self.decoder), self.device, offload)
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
        M-CLIP (XLM-R large) and the CLIP image encoder, 1.6 GiB in fp16, leave the GPU (unless offloading,
        which moves them anyway) and no batch runs them. The decoder's conditioning no longer depends on the
        batch size either.
        """
        import torch

        dec, prior = self.decoder, self.prior
        with torch.no_grad():
            emb, hidden, mask = dec._encode_prompt([""], dec._execution_device, 1, False)
            zero = prior.get_zero_embed(1, device=prior._execution_device)

        def encode_prompt(prompt: Any, device: Any, num_images_per_prompt: int, do_classifier_free_guidance: bool,
                          negative_prompt: Any = None) -> tuple[Any, Any, Any]:
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
                generator=_generators(seeds),
            )
        return out.image_embeds, out.negative_image_embeds

    def render(
        self, vectors: Any, prompts: list[str], seeds: list[int], s: Settings, paths: list[str | None] | None = None
    ) -> list[Any]:
        """One image per (vector, prompt, seed). ``paths`` is accepted for symmetry with SD and unused."""
        import torch

        emb, neg = self.image_embeds(vectors, prompts, seeds, s)
        with torch.inference_mode():
            return self.decoder(
                [""] * len(prompts), image_embeds=emb, negative_image_embeds=neg, height=s.size, width=s.size,
                num_inference_steps=s.steps, guidance_scale=s.guidance, generator=_generators(seeds),
            ).images


class SDRenderer:
    backend = "sd15"

    def __init__(self, cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False,
                 compile: bool = False) -> None:
        self.device, self.dtype = placement(device, dtype)  # quietens the libraries before they import
        from diffusers import StableDiffusionPipeline

        self.cfg = cfg
        self.pipe = from_pretrained(
            StableDiffusionPipeline, cfg.sd, dtype=self.dtype, safety_checker=None, requires_safety_checker=False
        )
        _set_scheduler(self.pipe, cfg.scheduler)
        _place((self.pipe,), self.device, offload)
        self.compiled = compile
        if compile:
            compile_unet(self.pipe)
        self.text = TextSide(self.pipe.tokenizer, self.pipe.text_encoder, cfg.sd)
        self.models = {"sd": cfg.sd}

    def render(self, vectors: Any, prompts: list[str], seeds: list[int], s: Settings, paths: list[str | None] | None = None) -> list[Any]:
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
                    [p.replace("<>", n) for p, n in zip(prompts, names)], height=s.size, width=s.size,
                    num_inference_steps=s.steps, guidance_scale=s.guidance, generator=_generators(seeds),
                ).images
        finally:
            self.pipe.unload_textual_inversion(tokens=names)


def make_renderer(cfg: RenderConfig, device: str = "auto", dtype: str = "auto", offload: bool = False,
                  compile: bool = False) -> Any:
    if cfg.backend == "kandinsky21":
        return KandinskyRenderer(cfg, device, dtype, offload, compile=compile)
    if cfg.backend == "sd15":
        return SDRenderer(cfg, device, dtype, offload, compile=compile)
    if cfg.backend == "sdxl":
        from distok_cli.backends.sdxl import SDXLRenderer

        return SDXLRenderer(cfg, device, dtype, offload, compile=compile)
    raise BadInput(f"unknown render backend {cfg.backend!r}")


def text_contexts(cfg: RenderConfig) -> list[tuple[str, str]]:
    """(model reference, tokenizer subfolder) of every text encoder the renderer puts a token into."""
    if cfg.backend == "kandinsky21":
        return [(cfg.prior, "tokenizer")]
    if cfg.backend == "sdxl":
        from distok_cli.backends.sdxl import tokenizer_folders

        return [(cfg.sdxl, sub) for sub in tokenizer_folders()]
    return [(cfg.sd, "tokenizer")]


# ------------------------------------------------------------------------------------------ PNG files


def png_bytes(image: Any, parameters: str, meta: dict[str, Any]) -> bytes:
    """PNG with an A1111-style ``parameters`` text chunk and a ``distok`` JSON chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", parameters)
    info.add_text("distok", json.dumps(meta, sort_keys=True, separators=(",", ":")))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def a1111_parameters(prompt: str, seed: int, s: Settings, models: dict[str, str], token_id: str) -> str:
    model = ", ".join(f"{k}: {v}" for k, v in models.items())
    return (
        f"{prompt}\nSteps: {s.steps}, Prior steps: {s.prior_steps}, CFG scale: {s.guidance}, "
        f"Prior CFG scale: {s.prior_guidance}, Seed: {seed}, Size: {s.size}x{s.size}, Model: {model}, "
        f'TI hashes: "<>: {token_id.split(":", 1)[1][:10]}", Version: distok'
    )


def _font(size: int = 14) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def triangle_sheet(rows: list[list[Any]], labels: list[str], grid: int, prompts: list[str], cell: int = 128) -> Any:
    """A triangle sweep per prompt: row r holds r + 1 images (its grid points in path order), centred, each
    labelled with its weights; the prompts stacked, each under its own heading."""
    from PIL import Image, ImageDraw

    font, heading, pad, label_h, head = _font(11), _font(14), 6, 16, 24
    width = grid * (cell + pad) + pad
    tri_h = grid * (cell + label_h + pad) + pad
    sheet = Image.new("RGB", (width, len(prompts) * (tri_h + head)), "white")
    draw = ImageDraw.Draw(sheet)
    for q, (prompt, images) in enumerate(zip(prompts, rows)):
        top = q * (tri_h + head)
        draw.text((pad, top + 4), prompt[:80], fill="black", font=heading)
        idx = 0
        for r in range(grid):
            x0 = (width - (r + 1) * (cell + pad) + pad) // 2
            y = top + head + r * (cell + label_h + pad)
            for k in range(r + 1):
                x = x0 + k * (cell + pad)
                sheet.paste(images[idx].convert("RGB").resize((cell, cell)), (x, y))
                draw.text((x, y + cell + 2), labels[idx][:22], fill="black", font=font)
                idx += 1
    return sheet


def contact_sheet(images: list[list[Any]], row_labels: list[str], col_labels: list[str], cell: int = 160) -> Any:
    """A labelled grid: one row per token and one column per prompt, or (a sweep) one row per prompt and one
    column per token in path order."""
    from PIL import Image, ImageDraw

    font = _font(14)
    pad, top, left = 4, 28, 140
    rows, cols = len(images), max(len(r) for r in images)
    sheet = Image.new("RGB", (left + cols * (cell + pad) + pad, top + rows * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(col_labels):
        draw.text((left + j * (cell + pad) + pad, 6), label[:24], fill="black", font=font)
    for i, row in enumerate(images):
        y = top + i * (cell + pad) + pad
        draw.text((6, y + cell // 2 - 8), row_labels[i][:16], fill="black", font=font)
        for j, img in enumerate(row):
            sheet.paste(img.convert("RGB").resize((cell, cell)), (left + j * (cell + pad) + pad, y))
    return sheet

"""What every diffusers renderer shares: render settings, per-image generators, schedulers, placement and
``torch.compile``, and running a pipeline with tokens injected. Each backend module (:mod:`.kandinsky`, :mod:`.sd`,
:mod:`.sdxl`, :mod:`.flux`) builds its pipeline
with these public helpers; none imports another backend.

Every image has its own CPU ``torch.Generator`` seeded with its seed, so an image depends on
(token, prompt, seed, settings) and not on what else shares its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distok_cli.errors import BadInput
from distok_cli.files.recipes import RenderConfig
from distok_cli.limits import MIN_PRIOR_STEPS, MIN_SIZE

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
            raise BadInput(
                f"--size must be at least {MIN_SIZE}; --steps, --batch-size at least 1; --guidance not negative"
            )
        if s.prior_steps < MIN_PRIOR_STEPS:
            raise BadInput(f"--prior-steps must be at least {MIN_PRIOR_STEPS}")
        return s


def generators(seeds: list[int]) -> list[Any]:
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def run_with_tokens(
    pipe: Any, text: Any, vectors: Any, prompts: list[str], seeds: list[int], s: Any, **extra: Any
) -> list[Any]:
    """One image per (vector, prompt, seed) from a pipeline whose text encoders ``text`` hooks (SDXL, FLUX):
    each ``<>`` becomes the placeholder, every prompt must keep it within the encoders' context, and the
    pipeline runs with the tokens injected; ``extra`` are the pipeline's own keyword arguments."""
    import torch

    from distok_cli.backends.textside import TextSide

    filled = [TextSide.fill(p) for p in prompts]
    text.check_fits(filled)
    with torch.inference_mode(), text.inject(vectors):
        return pipe(
            filled,
            height=s.size,
            width=s.size,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            generator=generators(seeds),
            **extra,
        ).images


def set_scheduler(pipe: Any, name: str) -> None:
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

    The UNet is where a render spends its time (50 of the 75 model calls, the largest model); what it
    saves is measured in BENCHMARKS.md. The first batch pays the compilation.
    """
    pipe.unet.compile(**COMPILE)


def place(pipes: tuple[Any, ...], device: str, offload: bool) -> None:
    """Silence the pipelines' own progress bars; move them to the device, or offload them (CUDA only)."""
    for pipe in pipes:
        pipe.set_progress_bar_config(disable=True)
        if offload and device.startswith("cuda"):
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)

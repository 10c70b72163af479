"""Which stage of a render is running: for Kandinsky 2.1 the prior's text encoder, a prior step, a UNet step,
the MoVQ decode; for SDXL each text encoder, a UNet step, the VAE decode; for FLUX CLIP-L, T5, a
transformer step, the VAE decode.

Shared by bench/gpu_bench.py (per-stage wall time, CUDA-synchronised) and bench/physical_limits.py
(per-stage FLOPs and kernel counts): both hook the renderer's own modules, so the split is the one the
code really runs, not a re-enactment of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def render_modules(renderer: Any) -> dict[str, Any]:
    """Stage name → module of a KandinskyRenderer, an SDXLRenderer or a FluxRenderer (the decode is a method, hooked apart)."""
    if getattr(renderer, "backend", None) == "sdxl":
        pipe = renderer.pipe
        return {"text_l": pipe.text_encoder, "text_g": pipe.text_encoder_2, "unet_step": pipe.unet}
    if getattr(renderer, "backend", None) == "flux":
        pipe = renderer.pipe
        return {"text_l": pipe.text_encoder, "text_t5": pipe.text_encoder_2, "transformer_step": pipe.transformer}
    return {
        "prior_text": renderer.prior.text_encoder,
        "prior_step": renderer.prior.prior,
        "unet_step": renderer.decoder.unet,
    }


def decoder(renderer: Any) -> tuple[str, Any]:
    """The decode stage's name and the module whose ``decode`` method it is."""
    if getattr(renderer, "backend", None) in ("sdxl", "flux"):
        return "vae_decode", renderer.pipe.vae
    return "movq_decode", renderer.decoder.movq


@contextlib.contextmanager
def hooked(renderer: Any, enter: Callable[[str], None], leave: Callable[[str], None]) -> Iterator[None]:
    """Within the block, ``enter(stage)``/``leave(stage)`` run around every call of each stage's module and
    of the decode ("movq_decode" or "vae_decode"). Calls nest only if a stage calls another; none does."""
    handles = []
    for name, module in render_modules(renderer).items():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: enter(n)))
        handles.append(module.register_forward_hook(lambda m, a, o, n=name: leave(n)))
    stage, module = decoder(renderer)
    original = module.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        enter(stage)
        try:
            return original(*args, **kwargs)
        finally:
            leave(stage)

    module.decode = decode
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        del module.decode  # back to the class's method

"""Which stage of a render is running: the prior's text encoder, a prior step, a UNet step, the MoVQ decode.

Shared by bench/gpu_bench.py (per-stage wall time, CUDA-synchronised) and bench/physical_limits.py
(per-stage FLOPs and kernel counts): both hook the renderer's own modules, so the split is the one the
code really runs, not a re-enactment of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def render_modules(renderer: Any) -> dict[str, Any]:
    """Stage name → module of a KandinskyRenderer (the MoVQ decode is a method, hooked separately)."""
    return {"prior_text": renderer.prior.text_encoder, "prior_step": renderer.prior.prior,
            "unet_step": renderer.decoder.unet}


@contextlib.contextmanager
def hooked(renderer: Any, enter: Callable[[str], None], leave: Callable[[str], None]) -> Iterator[None]:
    """Within the block, ``enter(stage)``/``leave(stage)`` run around every call of each stage's module and
    of ``decoder.movq.decode`` ("movq_decode"). Calls nest only if a stage calls another; none does."""
    handles = []
    for name, module in render_modules(renderer).items():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: enter(n)))
        handles.append(module.register_forward_hook(lambda m, a, o, n=name: leave(n)))
    movq = renderer.decoder.movq
    original = movq.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        enter("movq_decode")
        try:
            return original(*args, **kwargs)
        finally:
            leave("movq_decode")

    movq.decode = decode
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        del movq.decode  # back to the class's method

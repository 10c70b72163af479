"""The DisTok losses, as the paper states them (per sample; the trainer averages over the n samples).

* ``L_mix = (1 − min(cos(E(q_r), E(q_a)), ε1)) + (1 − min(cos(E(q_s), E(q_a)), ε2))``
* ``L_cst = 1 − cos(E(t_crt), E(t_nvl))``
* ``L_reg = ‖μ(z)‖² / σ(z)²``: zero mean, large variance. The paper does not say over which axis μ and
  σ are taken; ``axis="batch"`` (default) takes them per latent dimension over the step's batch
  (μ ∈ R^ω, σ² the mean per-dimension variance), ``axis="dims"`` per sample over its ω dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

REG_EPS = 1e-6


def l_mix(
    e_a: torch.Tensor, e_r: torch.Tensor, e_s: torch.Tensor, eps1: float = 0.85, eps2: float = 0.80
) -> torch.Tensor:
    """Concept fusion, per sample: [n]."""
    c_r = F.cosine_similarity(e_r, e_a, dim=-1).clamp(max=eps1)
    c_s = F.cosine_similarity(e_s, e_a, dim=-1).clamp(max=eps2)
    return (1 - c_r) + (1 - c_s)


def l_cst(e_crt: torch.Tensor, e_nvl: torch.Tensor) -> torch.Tensor:
    """Distribution consistency, per sample: [n]."""
    return 1 - F.cosine_similarity(e_crt, e_nvl, dim=-1)


def l_reg(z: torch.Tensor, axis: str = "batch", anchored: bool = False) -> torch.Tensor:
    """Latent regularisation (a scalar) on latents ``z`` [n, ω].

    ``anchored`` adds ``(log σ²)²``: the paper's ratio is scale-free, so its gradient never opposes a
    growing latent scale, and under Adam the scale drifts up step after step (0.2 → 0.7 in 3,000 steps,
    then overflow to NaN by step 1,100 at lr 3e-3 or 5,600 at lr 1e-3 on the minilm recipe). The anchor
    holds σ² near 1, the scale ``sample`` draws from."""
    if axis == "batch":
        if z.shape[0] < 2:
            return z.new_zeros(())
        mu = z.mean(0)
        var = z.var(0, unbiased=False).mean()
        ratio = (mu**2).sum() / (var + REG_EPS)
        return ratio + (var + REG_EPS).log() ** 2 if anchored else ratio
    if axis == "dims":
        mu = z.mean(1)
        var = z.var(1, unbiased=False).mean()
        ratio = (mu**2).mean() / (var + REG_EPS)
        return ratio + (var + REG_EPS).log() ** 2 if anchored else ratio
    raise ValueError(f"unknown L_reg axis {axis!r}")


def l_rec(reconstruction: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Residual models: how well the latent holds its input mix, ``mean ‖skip(z) − mix‖² / mean ‖mix‖²``
    (a scalar; scale-free, so it weighs the same in every token space)."""
    return ((reconstruction - inputs) ** 2).sum(-1).mean() / (inputs.detach() ** 2).sum(-1).mean().clamp_min(1e-12)

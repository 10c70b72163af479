"""DisTok's two MLPs in torch: ``E_dis`` (d → H → ω) and ``D_tok`` (ω → H → d), plus distok's residual path.

Parameter names match the checkpoint tensors (``E_dis.0.weight`` ...), so a trained model becomes a
numpy :class:`~distok_cli.files.checkpoint.Checkpoint` without renaming, and ``encode``/``sample`` run it
without torch.

**Residual** (``train.residual``, distok's default; the paper's model has none): a linear ``skip`` ω → d
beside ``D_tok``, trained to reconstruct the input mix from its latent, and ``D_tok``'s last layer starts
at zero. A distribution's token is ``mix + D_tok(z)`` (z = E_dis(mix)): it *starts* at the raw mix
Σ p_i t_i, so training only has to learn a correction, and the part of the mix a 20-d latent cannot hold
passes through. A latent alone (``sample``) decodes to ``skip(z) + D_tok(z)``: the mix the latent stands
for, plus the same correction. Without the residual path both are ``D_tok(z)``, as in the paper.

**Heads** (``train.heads``): for a token space with parts (one vector per text encoder), ``parts`` gives
``D_tok`` one MLP per part (ω → H → d_part each, outputs concatenated in the space's order; tensors
``D_tok.<part>.0.weight`` ...); ``joint`` is one MLP for the whole vector. Measured: BENCHMARKS.md, "D_tok for two parts".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from distok_cli.files.checkpoint import ARITIES, CHECKPOINT_VERSION, Checkpoint


def arity_index(arity: torch.Tensor) -> torch.Tensor:
    """The entry of a per-arity parameter for rows of ``arity`` classes (:data:`ARITIES`: 2, 3, 4 or more)."""
    return arity.clamp(ARITIES[0], ARITIES[-1]) - ARITIES[0]


CLASS_EMBEDDING_RULE = "mean of the text encoder's input embeddings of the class name's word pieces"


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_out))


class PartHeads(nn.ModuleDict):
    """D_tok with one MLP per part of the token space; the outputs concatenated in the space's order."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(z) for head in self.values()], -1)

    def last_layers(self) -> list[nn.Linear]:
        return [head[2] for head in self.values()]


class DisTok(nn.Module):
    def __init__(
        self,
        dim: int,
        hidden: int = 768,
        latent_dim: int = 20,
        residual: bool = False,
        parts: tuple[tuple[str, int], ...] = (),
        reweight_classes: int = 0,
        reweight_arity: bool = False,
    ) -> None:
        """``parts``: ((name, width), ...) for one D_tok head per part (the widths sum to ``dim``);
        ``reweight_classes``: K for a learned weighting of the input mix (:meth:`mix`), 0 for none;
        ``reweight_arity``: one exponent α per arity (2, 3, 4 or more classes) instead of one for all."""
        super().__init__()
        self.dim, self.hidden, self.latent_dim, self.residual = dim, hidden, latent_dim, residual
        self.parts = tuple(parts)
        if parts and sum(d for _, d in parts) != dim:
            raise ValueError(f"parts {parts} are not {dim} wide")
        self.E_dis = mlp(dim, hidden, latent_dim)
        self.D_tok = (
            PartHeads({n: mlp(latent_dim, hidden, d) for n, d in parts}) if parts else mlp(latent_dim, hidden, dim)
        )
        if residual:
            self.skip = nn.Linear(latent_dim, dim)
            last = self.D_tok.last_layers() if parts else [self.D_tok[2]]
            with torch.no_grad():  # the correction starts at zero: a token starts at its input mix
                for layer in last:
                    layer.weight.zero_()
                    layer.bias.zero_()
        if reweight_classes:  # starts at the plain mix: α = 1, b = 0
            self.reweight = nn.ParameterDict(
                {
                    "log_alpha": nn.Parameter(torch.zeros(len(ARITIES) if reweight_arity else 1)),
                    "bias": nn.Parameter(torch.zeros(reweight_classes)),
                }
            )
        # Where E_dis puts its inputs: running mean and std per latent dimension (see Trainer.track_latents).
        # Random latents are drawn as latent_mean + latent_std · ε, so sampled tokens sit on the trained manifold.
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.E_dis(inputs)

    def mix(self, p: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
        """The input mix of distributions p [n, K]: Σ p_i t_i, or with a learned weighting Σ w_i t_i where
        w_i = p_i^α e^{b_i} / Σ_j p_j^α e^{b_j} over the classes p gives weight to (the checkpoint's
        ``reweight.log_alpha`` (log α; with three entries, α of the arity: 2, 3, 4 or more classes) and
        ``reweight.bias`` (b))."""
        if not hasattr(self, "reweight"):
            return p @ class_embeddings
        log_alpha = self.reweight["log_alpha"]
        if log_alpha.numel() > 1:  # α of each row's arity (one class: any α gives w = 1)
            log_alpha = log_alpha[arity_index((p > 0).sum(-1))][:, None]
        alpha = log_alpha.exp()
        logits = alpha * p.clamp_min(1e-30).log() + self.reweight["bias"]
        w = torch.where(p > 0, logits, torch.full_like(logits, -torch.inf)).softmax(-1)
        return w @ class_embeddings

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """A latent's token (``sample``'s path): ``D_tok(z)``, plus ``skip(z)`` for a residual model."""
        out = self.D_tok(z)
        return out + self.skip(z) if self.residual else out

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """The input mix as the latent holds it (residual models): ``skip(z)``."""
        return self.skip(z)

    def standardised(self, eps: torch.Tensor) -> torch.Tensor:
        """A prior draw ε in the latents' own scale: ``latent_mean + latent_std · ε``."""
        return self.latent_mean + self.latent_std * eps

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, token) for input mixes: ``inputs + D_tok(z)`` for a residual model, else ``D_tok(z)``."""
        z = self.encode(inputs)
        return z, (inputs + self.D_tok(z)) if self.residual else self.D_tok(z)

    def to_checkpoint(self, class_embeddings: torch.Tensor, config: dict[str, Any]) -> Checkpoint:
        tensors = {k: v.detach().to("cpu", torch.float32).numpy().copy() for k, v in self.state_dict().items()}
        tensors["class_embeddings"] = class_embeddings.detach().to("cpu", torch.float32).numpy().copy()
        cfg = {
            "format": f"distok.checkpoint/{CHECKPOINT_VERSION}",
            "dim": self.dim,
            "hidden": self.hidden,
            "latent_dim": self.latent_dim,
            "activation": "gelu_tanh",
            "class_embedding": CLASS_EMBEDDING_RULE,
            **({"residual": True} if self.residual else {}),
            **({"heads": "parts"} if self.parts else {}),
            **({"reweight": True} if hasattr(self, "reweight") else {}),
            **(
                {"reweight_arity": True} if hasattr(self, "reweight") and self.reweight["log_alpha"].numel() > 1 else {}
            ),
            **config,
        }
        return Checkpoint(tensors, cfg)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> DisTok:
        c = ckpt.config
        parts = ckpt.space.layout if c.get("heads") == "parts" else ()
        model = cls(
            c["dim"],
            c["hidden"],
            c["latent_dim"],
            residual=bool(c.get("residual", False)),
            parts=parts,
            reweight_classes=len(c["classes"]) if c.get("reweight") else 0,
            reweight_arity=bool(c.get("reweight_arity")),
        )
        state = {k: torch.from_numpy(np.array(v)) for k, v in ckpt.tensors.items() if k != "class_embeddings"}
        model.load_state_dict(state, strict=False)  # checkpoints before 0.3 have no latent statistics
        return model

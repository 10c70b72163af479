"""DisTok's two MLPs in torch: ``E_dis`` (d → H → ω) and ``D_tok`` (ω → H → d).

Parameter names match the checkpoint tensors (``E_dis.0.weight`` ...), so a trained model becomes a
numpy :class:`~distok_cli.files.checkpoint.Checkpoint` without renaming, and ``encode``/``sample`` run it
without torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from distok_cli.files.checkpoint import CHECKPOINT_VERSION, Checkpoint

CLASS_EMBEDDING_RULE = "mean of the text encoder's input embeddings of the class name's word pieces"


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_out))


class DisTok(nn.Module):
    def __init__(self, dim: int, hidden: int = 768, latent_dim: int = 20) -> None:
        super().__init__()
        self.dim, self.hidden, self.latent_dim = dim, hidden, latent_dim
        self.E_dis = mlp(dim, hidden, latent_dim)
        self.D_tok = mlp(latent_dim, hidden, dim)
        # Where E_dis puts its inputs: running mean and std per latent dimension (see Trainer.track_latents).
        # Random latents are drawn as latent_mean + latent_std · ε, so sampled tokens sit on the trained manifold.
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.E_dis(inputs)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.D_tok(z)

    def standardised(self, eps: torch.Tensor) -> torch.Tensor:
        """A prior draw ε in the latents' own scale: ``latent_mean + latent_std · ε``."""
        return self.latent_mean + self.latent_std * eps

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(inputs)
        return z, self.decode(z)

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
            **config,
        }
        return Checkpoint(tensors, cfg)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> DisTok:
        c = ckpt.config
        model = cls(c["dim"], c["hidden"], c["latent_dim"])
        state = {k: torch.from_numpy(np.array(v)) for k, v in ckpt.tensors.items() if k != "class_embeddings"}
        model.load_state_dict(state, strict=False)  # checkpoints before 0.3 have no latent statistics
        return model

"""DisTok checkpoints: the two MLPs, their config and the class vocabulary, in one safetensors file.

This module is numpy-only on purpose: ``encode`` and ``sample`` run the MLPs here (one matrix product
per layer), so making a token needs neither torch nor a text encoder. The torch twin of these MLPs lives
in ``distok_cli.method.model``; ``tests/test_method.py`` checks that both give the same tokens.

File layout (spec: ``formats/distok-checkpoint-v1.md``): tensors ``E_dis.0.weight [H, d]``,
``E_dis.0.bias [H]``, ``E_dis.2.weight [ω, H]``, ``E_dis.2.bias [ω]``, ``D_tok.0.weight [H, ω]``,
``D_tok.0.bias [H]``, ``D_tok.2.weight [d, H]``, ``D_tok.2.bias [d]`` (with ``heads: parts``, those four per
part as ``D_tok.<part>.*``, out width the part's), ``class_embeddings [K, d]``;
metadata ``distok.checkpoint`` = ``1.0``, ``distok.config`` (canonical JSON) and ``distok.content_id``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli.errors import BadInput
from distok_cli.files import frame, schema
from distok_cli.files.safety import atomic_write
from distok_cli.files.space import TokenSpace, space_from_json
from distok_cli.files.tokenfile import canonical_json, safetensors_bytes

CHECKPOINT_VERSION = "1.0"
#: The arities a per-arity weighting exponent covers (``config.reweight_arity``): 2, 3, and 4 or more classes.
ARITIES = (2, 3, 4)
SCHEMA = "distok-checkpoint-v1"
MODEL_FILE = "model.safetensors"
#: Largest checkpoint read (the paper's model is ~5 MB; a 4096-d, 10,000-class one stays far below this).
MAX_CHECKPOINT_BYTES = 1 << 30
LAYERS = ("E_dis.0", "E_dis.2", "D_tok.0", "D_tok.2")
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (the activation of both MLPs; torch: ``nn.GELU(approximate="tanh")``)."""
    return 0.5 * x * (1.0 + np.tanh(np.float32(SQRT_2_OVER_PI) * (x + np.float32(0.044715) * x * x * x)))


def tensors_hash(tensors: dict[str, np.ndarray]) -> str:
    """``sha256:`` over (name, shape, float32 bytes) of every tensor in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        h.update(f"{name}:{list(arr.shape)}:".encode())
        h.update(arr.tobytes())
    return "sha256:" + h.hexdigest()


@dataclass
class Checkpoint:
    """A trained DisTok model as numpy arrays plus its config (``classes``, ``token_space``, sizes...)."""

    tensors: dict[str, np.ndarray]
    config: dict[str, Any]
    path: str | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    @property
    def space(self) -> TokenSpace:
        return space_from_json(self.config["token_space"])

    @cached_property
    def hash(self) -> str:
        """Content hash of the weights (computed once: the tensors are not meant to change)."""
        return tensors_hash(self.tensors)

    @property
    def class_embeddings(self) -> np.ndarray:
        return self.tensors["class_embeddings"]

    def model_ref(self) -> dict[str, Any]:
        return {"hash": self.hash, "recipe": self.config.get("recipe", ""), "step": self.config.get("step", 0)}

    def _layer(self, name: str, x: np.ndarray) -> np.ndarray:
        return x @ self.tensors[f"{name}.weight"].T + self.tensors[f"{name}.bias"]

    def encode_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """E_dis: token-space inputs [N, d] (e.g. Σ p_i t_i) → latents [N, ω]."""
        return self._layer("E_dis.2", gelu_tanh(self._layer("E_dis.0", inputs.astype(np.float32))))

    @property
    def residual(self) -> bool:
        """distok's residual decoder (a ``skip`` layer beside D_tok; see ``distok_cli.method.model``)."""
        return bool(self.config.get("residual", False))

    @property
    def head_names(self) -> list[str]:
        """D_tok's heads: ``["D_tok"]``, or one ``D_tok.<part>`` per part (``config.heads: parts``)."""
        if self.config.get("heads") == "parts":
            return [f"D_tok.{name}" for name, _ in self.space.layout]
        return ["D_tok"]

    def _correction(self, z: np.ndarray) -> np.ndarray:
        z = z.astype(np.float32)
        outs = [self._layer(f"{h}.2", gelu_tanh(self._layer(f"{h}.0", z))) for h in self.head_names]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, -1)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """A latent's token (``sample``): latents [N, ω] → tokens [N, d]; ``D_tok(z)``, plus ``skip(z)``
        for a residual model."""
        out = self._correction(z)
        return out + self._layer("skip", z.astype(np.float32)) if self.residual else out

    def tokens(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(latents, tokens) of input mixes [N, d] (``encode``): a residual model's token is
        ``mix + D_tok(E_dis(mix))``, the paper's ``D_tok(E_dis(mix))``."""
        z = self.encode_inputs(inputs)
        if self.residual:
            return z, inputs.astype(np.float32) + self._correction(z)
        return z, self.decode(z)

    def reweighted(self, weights: dict[str, float]) -> dict[str, float]:
        """The weights the model mixes (``config.reweight``): each class's w ∝ p^α e^b, token files' (no
        class) w ∝ p^α, renormalised to the same total; unchanged for a model without a learned weighting."""
        if not self.config.get("reweight"):
            return dict(weights)
        log_alpha = self.tensors["reweight.log_alpha"]
        arity = sum(1 for w in weights.values() if w > 0)  # α of the arity, with one exponent per arity
        slot = min(max(arity, ARITIES[0]), ARITIES[-1]) - ARITIES[0] if len(log_alpha) > 1 else 0
        alpha = float(np.exp(np.float64(log_alpha[slot])))
        bias = dict(zip(self.classes, self.tensors["reweight.bias"].astype(np.float64)))
        total = sum(weights.values())
        raw = {n: (w**alpha) * math.exp(bias.get(n, 0.0)) if w > 0 else 0.0 for n, w in weights.items()}
        s = sum(raw.values())
        return {n: total * v / s for n, v in raw.items()}

    def standardise(self, eps: np.ndarray) -> np.ndarray:
        """A prior draw ε [N, ω] in the latents' trained scale: ``latent_mean + latent_std · ε``
        (checkpoints without latent statistics, before 0.3, use ε as it is)."""
        if "latent_mean" not in self.tensors:
            return eps.astype(np.float32)
        return (self.tensors["latent_mean"] + self.tensors["latent_std"] * eps).astype(np.float32)

    def mix(self, weights: np.ndarray) -> np.ndarray:
        """Σ_i p_i t_i for weight rows [N, K]."""
        return weights.astype(np.float32) @ self.class_embeddings

    def to_bytes(self) -> bytes:
        meta = {
            "distok.checkpoint": CHECKPOINT_VERSION,
            "distok.config": canonical_json(self.config),
            "distok.content_id": self.hash,
        }
        return safetensors_bytes(self.tensors, meta)

    def save(self, path: str | Path) -> str:
        atomic_write(path, self.to_bytes())
        return str(path)


def _bad(path: str, reason: str) -> BadInput:
    return BadInput(f"{path}: {reason}")


def checkpoint_path(path: str | Path) -> Path:
    """A run folder's ``model.safetensors``, or the file itself."""
    p = Path(path)
    if p.is_dir():
        if (p / MODEL_FILE).is_file():
            return p / MODEL_FILE
        raise _bad(str(p), f"not a distok run folder (no {MODEL_FILE}; train one with `distok train`)")
    if not p.exists():
        raise _bad(str(p), "no such run folder or checkpoint")
    return p


def load(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint (file or run folder), numpy only: the frame, then the metadata against
    ``distok-checkpoint-v1.schema.json``, then tensor shapes against the config and the content id."""
    p = checkpoint_path(path)
    where = str(p)
    fr = frame.read(p, MAX_CHECKPOINT_BYTES, "distok checkpoint", dtypes=("F32",))
    meta = fr.metadata
    if "distok.checkpoint" not in meta or meta["distok.checkpoint"].split(".")[0] != CHECKPOINT_VERSION.split(".")[0]:
        raise _bad(where, "not a distok checkpoint (or an unsupported version)")
    try:
        schema.validate(meta, "", SCHEMA, "metadata")
        config = schema.decode(meta["distok.config"], "config", SCHEMA, "checkpoint config")
    except BadInput as exc:
        raise _bad(where, str(exc)) from None
    if len(set(config["classes"])) != len(config["classes"]):
        raise _bad(where, "checkpoint config lists a class twice")
    for key in ("dim", "hidden", "latent_dim"):
        config[key] = int(config[key])
    ckpt = Checkpoint(dict(fr.tensors), config, where)
    _validate(ckpt)
    if meta["distok.content_id"] != ckpt.hash:
        raise _bad(where, "content id does not match the weights (file altered or corrupt)")
    return ckpt


def _validate(ckpt: Checkpoint) -> None:
    c, t, where = ckpt.config, ckpt.tensors, str(ckpt.path)
    d, h, w, k = c["dim"], c["hidden"], c["latent_dim"], len(c["classes"])
    if c["token_space"]["dim"] != d:
        raise _bad(where, f"checkpoint token_space dim {c['token_space']['dim']} is not its dim {d}")
    try:
        space_from_json(c["token_space"])  # parts: names, widths and fingerprint
    except BadInput as exc:
        raise _bad(where, str(exc)) from None
    want = {
        "E_dis.0.weight": [h, d],
        "E_dis.0.bias": [h],
        "E_dis.2.weight": [w, h],
        "E_dis.2.bias": [w],
        "class_embeddings": [k, d],
    }
    if c.get("heads") == "parts":  # 0.5: one D_tok head per part of the token space
        layout = space_from_json(c["token_space"]).layout
        if not layout:
            raise _bad(where, "checkpoint heads 'parts' needs a token space with parts")
        heads = [(f"D_tok.{name}", dim) for name, dim in layout]
    else:
        heads = [("D_tok", d)]
    for head, out in heads:
        want.update(
            {f"{head}.0.weight": [h, w], f"{head}.0.bias": [h], f"{head}.2.weight": [out, h], f"{head}.2.bias": [out]}
        )
    if "latent_mean" in t or "latent_std" in t:  # optional (0.3): the latents' running mean and std
        want.update({"latent_mean": [w], "latent_std": [w]})
    if c.get("residual", False):  # 0.4: distok's residual decoder
        want.update({"skip.weight": [d, w], "skip.bias": [d]})
    if c.get("reweight_arity") and not c.get("reweight"):
        raise _bad(where, "checkpoint config.reweight_arity needs config.reweight")
    if c.get("reweight", False):  # 0.6: a learned weighting of the input mix (0.7: its exponent per arity)
        want.update({"reweight.log_alpha": [len(ARITIES) if c.get("reweight_arity") else 1], "reweight.bias": [k]})
    if set(t) != set(want):
        raise _bad(where, f"checkpoint tensors are {sorted(t)}, expected {sorted(want)}")
    for name, shape in want.items():
        if list(t[name].shape) != shape:
            raise _bad(where, f"tensor {name} has shape {list(t[name].shape)}, expected {shape}")
        if not np.isfinite(t[name]).all():
            raise _bad(where, f"tensor {name} has NaN or Inf values")
    if "latent_std" in t and not (t["latent_std"] > 0).all():
        raise _bad(where, "tensor latent_std must be positive")


def names_itself(path: str | Path) -> bool:
    """Whether the file at ``path`` is a DisTok checkpoint by its own word: a ``.safetensors`` file whose
    header's first 4 KiB name ``distok.checkpoint`` (a cheap look, before a full strict read)."""
    if not str(path).endswith(".safetensors"):
        return False
    try:
        with open(path, "rb") as fh:
            return b'"distok.checkpoint"' in fh.read(4096)
    except OSError:
        return False


def describe_run(path: str | Path) -> dict[str, Any]:
    """What ``inspect`` shows for a run folder or a checkpoint file."""
    ckpt = load(path)
    out: dict[str, Any] = {
        "path": str(path),
        "kind": "run" if Path(path).is_dir() else "checkpoint",
        "model_hash": ckpt.hash,
        "config": ckpt.config,
        "classes": ckpt.classes,
    }
    if Path(path).is_dir():
        run = Path(path)
        out["pool_size"] = len(list((run / "pool").glob("*.distok"))) if (run / "pool").is_dir() else 0
        log = run / "log.jsonl"
        if log.is_file():
            lines = log.read_text().splitlines()
            out["last_log"] = json.loads(lines[-1]) if lines else None
    return out

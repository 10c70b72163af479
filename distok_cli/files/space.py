"""Token spaces: which text encoder's token-embedding space a vector lives in, and its named parts.

A space is named by its encoder and fingerprinted by its embedding matrix, so a token made for one model
is refused by another (:func:`check_compatible`). A space with parts (SDXL's CLIP-L and OpenCLIP-G, FLUX's CLIP-L
and T5) is one vector per text encoder, concatenated in order (:func:`split`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from distok_cli.errors import BadInput

if TYPE_CHECKING:  # annotations only: the token file module imports this one
    from distok_cli.files.tokenfile import Token

#: A part's name is its tensor's name: lowercase, 1 to 32 characters, never ``emb_params``.
PART_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
TENSOR_KEY = "emb_params"  # the one-vector tensor's name in a token file
#: Part layouts that peer tools know by name (``modelspec.architecture``, the plain-file reader, export):
#: SDXL's CLIP-L + OpenCLIP-G, and FLUX.1's CLIP-L + T5-XXL (the keys diffusers' FLUX training writes).
SDXL_LAYOUT = (("clip_l", 768), ("clip_g", 1280))
FLUX_LAYOUT = (("clip_l", 768), ("t5", 4096))
#: Other names peers give a part's tensor: ComfyUI reads FLUX's T5 part as ``t5xxl``.
TENSOR_ALIASES = {"t5xxl": "t5"}


@dataclass(frozen=True)
class SpacePart:
    """One text encoder's share of a token: its name (the tensor's), width, subfolder and fingerprint."""

    name: str
    dim: int
    fingerprint: str
    subfolder: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dim": self.dim, "fingerprint": self.fingerprint, "name": self.name}
        if self.subfolder:
            out["subfolder"] = self.subfolder
        return out


def parts_fingerprint(parts: tuple[SpacePart, ...]) -> str:
    """A parted space's fingerprint: sha256 over ``name:dim:fingerprint;`` of each part, in order."""
    h = hashlib.sha256("".join(f"{p.name}:{p.dim}:{p.fingerprint};" for p in parts).encode())
    return "fp16-sha256:" + h.hexdigest()


@dataclass(frozen=True)
class TokenSpace:
    """Which text encoder's token-embedding space a vector lives in; with ``parts``, one space per text
    encoder (SDXL: CLIP-L and OpenCLIP-G), the vector being the parts concatenated in this order."""

    encoder: str
    dim: int
    fingerprint: str
    subfolder: str = ""
    parts: tuple[SpacePart, ...] = ()

    @classmethod
    def with_parts(cls, encoder: str, parts: tuple[SpacePart, ...]) -> TokenSpace:
        return cls(encoder, sum(p.dim for p in parts), parts_fingerprint(parts), "", parts)

    @property
    def layout(self) -> tuple[tuple[str, int], ...]:
        return tuple((p.name, p.dim) for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dim": self.dim, "encoder": self.encoder, "fingerprint": self.fingerprint}
        if self.subfolder:
            out["subfolder"] = self.subfolder
        if self.parts:
            out["parts"] = [p.to_json() for p in self.parts]
        return out

    def compatible(self, other: TokenSpace) -> bool:
        """Same vectors mean the same thing: equal layout, dimension and embedding-matrix fingerprint(s)."""
        return self.dim == other.dim and self.fingerprint == other.fingerprint and self.layout == other.layout

    def describe(self) -> str:
        if not self.parts:
            return f"{self.dim}-d"
        return " + ".join(f"{n} ({d})" for n, d in self.layout)


def describe_layout(layout: tuple[tuple[str, int], ...], dim: int) -> str:
    return " + ".join(f"{n} ({d})" for n, d in layout) if layout else f"one {dim}-d vector"


def check_compatible(token: Token, space: TokenSpace) -> None:
    """Refuse ``token`` in ``space``: another fingerprint, or (a plain file, no provenance) another layout."""
    what = token.path or token.short_id
    if token.layout != space.layout or token.dim != space.dim:
        raise BadInput(
            f"{what}: token has {describe_layout(token.layout, token.dim)}, {space.encoder} expects "
            f"{describe_layout(space.layout, space.dim)}"
        )
    if token.space is not None and not token.space.compatible(space):
        raise BadInput(
            f"{what} was made for {token.space.encoder} (fingerprint {token.space.fingerprint[:24]}…), "
            f"not {space.encoder} ({space.fingerprint[:24]}…)"
        )


def space_fingerprint(matrix: np.ndarray) -> str:
    """Fingerprint of a token-embedding matrix: sha256 of its float16 little-endian bytes, shape-prefixed.

    Rounding to float16 first makes the fingerprint the same whether the encoder was loaded in float32
    or float16.
    """
    m = np.ascontiguousarray(matrix, dtype="<f2")
    h = hashlib.sha256(f"{m.shape[0]}x{m.shape[1]}:".encode())
    h.update(m.tobytes())
    return "fp16-sha256:" + h.hexdigest()


def split(vector: np.ndarray, layout: tuple[tuple[str, int], ...]) -> dict[str, np.ndarray]:
    """A concatenated vector's parts, by name ({} for no layout)."""
    out, at = {}, 0
    for name, dim in layout:
        out[name] = vector[..., at : at + dim]
        at += dim
    return out


def space_from_json(space: dict[str, Any]) -> TokenSpace:
    """A :class:`TokenSpace` from its schema-checked JSON object, with what a schema cannot say checked:
    parts named by the part rule, distinct, their widths summing to ``dim``, the fingerprint theirs."""
    parts = tuple(
        SpacePart(p["name"], int(p["dim"]), p["fingerprint"], p.get("subfolder", "")) for p in space.get("parts", ())
    )
    if not parts:
        return TokenSpace(space["encoder"], int(space["dim"]), space["fingerprint"], space.get("subfolder", ""))
    names = [p.name for p in parts]
    if (
        len(parts) < 2
        or len(set(names)) != len(names)
        or any(not PART_NAME.fullmatch(n) or n == TENSOR_KEY for n in names)
    ):
        raise BadInput(
            f"token space parts {names}: need two or more distinct names of a-z, 0-9, '_' (not {TENSOR_KEY})"
        )
    if sum(p.dim for p in parts) != int(space["dim"]):
        raise BadInput(f"token space parts are {sum(p.dim for p in parts)} wide, not dim {space['dim']}")
    if parts_fingerprint(parts) != space["fingerprint"]:
        raise BadInput("token space fingerprint is not its parts' (file altered or corrupt)")
    return TokenSpace(space["encoder"], int(space["dim"]), space["fingerprint"], space.get("subfolder", ""), parts)

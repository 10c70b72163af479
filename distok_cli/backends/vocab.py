"""Nearest vocabulary tokens, read straight from a text encoder's files (no transformers import).

The token space names its encoder (a Hub id or a local folder, plus a subfolder). We read the
tokenizer's vocabulary from ``tokenizer.json``/``vocab.json``/``vocab.txt`` and the token-embedding
matrix from the encoder's safetensors weights with numpy, so ``inspect --neighbors`` stays light.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli.errors import BadInput, ModelNotAvailable
from distok_cli.files.space import TokenSpace, space_fingerprint
from distok_cli.files.tokenfile import Token

_EMBED_SUFFIXES = ("token_embedding.weight", "word_embeddings.weight")


def resolve(ref: str) -> Path:
    """A local folder for a Hub id or path, without touching the network."""
    if ref.startswith("minilm:"):
        from distok_cli.backends.refs import minilm_folder as folder

        return folder()
    if ref.startswith("twin:"):
        from distok_cli.backends.twins import built_path

        p = built_path(ref.split(":", 1)[1])
        if p.is_dir():
            return p
        raise ModelNotAvailable(f"twin {ref!r} is not built yet", hint="render or train with the tiny recipe once")
    p = Path(os.path.expanduser(ref))
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, local_files_only=True))
    except Exception:
        raise ModelNotAvailable(
            f"model {ref!r} is not a local folder and not in the Hugging Face cache",
            hint=f"download it once with network access (`hf download {ref}`), "
            "or point HF_HOME/HF_HUB_CACHE at a cache that has it",
        ) from None


def _vocab_from(folder: Path) -> list[str]:
    tj = folder / "tokenizer.json"
    if tj.is_file():
        data = json.loads(tj.read_text(encoding="utf-8"))
        vocab = data["model"]["vocab"]
        pairs = vocab.items() if isinstance(vocab, dict) else ((p[0], i) for i, p in enumerate(vocab))
        table = dict(pairs)
        for added in data.get("added_tokens", []):
            table[added["content"]] = added["id"]
    elif (folder / "vocab.json").is_file():
        table = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    elif (folder / "vocab.txt").is_file():
        table = {t: i for i, t in enumerate((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    else:
        raise BadInput(f"no tokenizer vocabulary in {folder}")
    out = [""] * (max(table.values()) + 1)
    for tok, i in table.items():
        out[i] = tok
    return out


def _matrix_from(folder: Path) -> np.ndarray:
    from safetensors import safe_open

    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="np") as st:
            for key in st.keys():
                if key.endswith(_EMBED_SUFFIXES):
                    return st.get_tensor(key).astype(np.float32)
    raise BadInput(f"no token-embedding matrix in the safetensors weights under {folder}")


def load_space(space: TokenSpace | Any, encoder: str | None = None) -> tuple[list[str], np.ndarray]:
    """Vocabulary and embedding matrix of a one-part space, or of one part (``encoder``: the space's)."""
    root = resolve(encoder or space.encoder)
    enc = root / space.subfolder if space.subfolder else root
    # a pipeline's text_encoder[_N] has its tokenizer[_N] beside it
    tok_dir = (
        root / space.subfolder.replace("text_encoder", "tokenizer")
        if space.subfolder.startswith("text_encoder")
        else enc
    )
    return _vocab_from(tok_dir), _matrix_from(enc)


def nearest_parts(token: Token, k: int) -> dict[str, list[tuple[str, float]]]:
    """For a token with parts: each part's ``k`` nearest vocabulary tokens in its own encoder."""
    if token.space is None:
        raise BadInput(f"{token.path}: a plain embedding names no token space, so it has no vocabulary to compare")
    out = {}
    for part, vec in zip(token.space.parts, token.part_vectors().values()):
        vocab, matrix = load_space(part, token.space.encoder)
        if space_fingerprint(matrix) != part.fingerprint:
            raise BadInput(
                f"{token.path}: the local {token.space.encoder} ({part.name}) is not the encoder this token was made for"
            )
        out[part.name] = _top(vocab, matrix, vec, k)
    return out


def _top(vocab: list[str], matrix: np.ndarray, vec: np.ndarray, k: int) -> list[tuple[str, float]]:
    m = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    v = vec / max(float(np.linalg.norm(vec)), 1e-12)
    sims = m @ v
    order = np.argsort(-sims, kind="stable")[:k]
    return [(vocab[i].replace("</w>", "") if i < len(vocab) else f"#{i}", float(sims[i])) for i in order]


def nearest(token: Token, k: int) -> list[tuple[str, float]]:
    """The ``k`` vocabulary tokens whose embedding rows have the highest cosine with the token."""
    if token.space is None:
        raise BadInput(
            f"{token.path}: a plain textual-inversion file names no token space, so it has no vocabulary to compare"
        )
    vocab, matrix = load_space(token.space)
    if space_fingerprint(matrix) != token.space.fingerprint:
        raise BadInput(f"{token.path}: the local {token.space.encoder} is not the encoder this token was made for")
    return _top(vocab, matrix, token.vector, k)

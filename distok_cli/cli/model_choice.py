"""The model a command uses (``-m``, ``DISTOK_MODEL`` or the default), loaded and announced on stderr."""

from __future__ import annotations

from typing import Any


def load_model(option: str, out: Any) -> tuple[Any, str]:
    """(checkpoint, path): the chosen model, named on stderr unless -q."""
    from distok_cli import api

    ckpt, path, origin = api.choose_model(option)
    out.notice(f"using model {path} ({origin})")
    return ckpt, path

"""The model a command uses (``-m``, ``DISTOK_MODEL`` or the default), loaded and announced on stderr."""

from __future__ import annotations

from typing import Any


def load_model(option: str, out: Any) -> tuple[Any, str]:
    """(checkpoint, path): the chosen model, named on stderr unless -q."""
    from distok_cli.files import checkpoint, config

    choice = config.choose_model(option)
    ckpt = checkpoint.load(choice.path)
    origin = {"-m": "-m", config.ENV_MODEL: f"${config.ENV_MODEL}", "default": "the default; `distok model` changes it"}
    out.notice(f"using model {choice.path} ({origin[choice.origin]})")
    return ckpt, choice.path

"""The user's distok settings: the default model (``distok model``), like ``llm models default``.

Stored as JSON in ``$XDG_CONFIG_HOME/distok/config.json`` (``~/.config/distok`` when unset), written
atomically. The default model is an absolute path, so it survives a change of working directory.
Which model a command uses: ``-m/--model``, else ``DISTOK_MODEL``, else the default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from distok_cli.errors import BadInput

ENV_MODEL = "DISTOK_MODEL"


def config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "distok" / "config.json"


def _read() -> dict:
    path = config_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise BadInput(f"{path}: not a readable distok config (fix or delete it)") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: not a readable distok config (fix or delete it)")
    return data


def default_model() -> str | None:
    value = _read().get("default_model")
    return value if isinstance(value, str) and value else None


def set_default_model(path: str | None) -> Path | None:
    """Store ``path`` (made absolute) as the default model, or clear it with ``None``."""
    from distok_cli.files.safety import atomic_write

    data = _read()
    if path is None:
        data.pop("default_model", None)
        stored = None
    else:
        stored = Path(path).expanduser().resolve()
        data["default_model"] = str(stored)
    atomic_write(config_file(), (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    return stored


@dataclass(frozen=True)
class ModelChoice:
    path: str
    origin: str  # "-m", "DISTOK_MODEL" or "default"


def choose_model(option: str | None) -> ModelChoice:
    """The model a command uses, and where the choice came from (no file is read beyond the config)."""
    if option:
        return ModelChoice(option, "-m")
    env = os.environ.get(ENV_MODEL, "")
    if env:
        return ModelChoice(env, ENV_MODEL)
    stored = default_model()
    if stored is None:
        raise BadInput(
            "no model: pass -m RUN, set DISTOK_MODEL, or make a default with `distok model RUN` "
            "(`distok train` and `distok demo` set one)"
        )
    if not Path(stored).exists():
        raise BadInput(
            f"the default model {stored} no longer exists (set another with `distok model RUN`, "
            "or clear it with `distok model --unset`)"
        )
    return ModelChoice(stored, "default")

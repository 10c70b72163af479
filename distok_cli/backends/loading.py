"""Load models with ``from_pretrained``, with one-line errors, on the device and in the precision asked.

References resolve through :mod:`distok_cli.backends.refs` (Hub id, folder, ``minilm:``, ``twin:``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from distok_cli.backends.refs import resolve
from distok_cli.errors import BadInput, ModelNotAvailable


def not_available(ref: str) -> ModelNotAvailable:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    how = (
        "HF_HUB_OFFLINE is set: unset it and run once with network access to cache it"
        if offline
        else "run once with network access to cache it"
    )
    return ModelNotAvailable(
        f"model {ref!r} is not available locally",
        hint=f"{how}, or point HF_HOME at a cache that has it, or give a local folder",
    )


def quiet_libraries() -> None:
    """Keep stderr for distok's own progress: silence library progress bars and chatter (unless debugging)."""
    if os.environ.get("DISTOK_DEBUG", "") not in ("", "0"):
        return
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import transformers

    if "diffusers" in sys.modules:  # a text side alone never imports diffusers (2 s): it is quietened once loaded
        import diffusers

        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*requires torchvision.*")


def from_pretrained(cls: Any, ref: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(resolve(ref))`` turning "not found / not cached" into one line."""
    quiet_libraries()
    path = resolve(ref)
    is_local = os.path.isdir(path)
    if not is_local and (os.path.exists(path) or path.startswith((".", "/", "~"))):
        raise BadInput(f"model path {ref!r} is not a folder")
    try:
        obj = cls.from_pretrained(path, **kwargs)
        # transformers 5 returns an empty tokenizer (2 special tokens) for a repo that is not cached.
        if hasattr(obj, "get_vocab") and len(obj) <= 2 and not is_local:
            raise not_available(ref)
        return obj
    except (OSError, ValueError) as exc:
        text = str(exc).lower()
        if not is_local and any(
            w in text for w in ("offline", "not found", "connect", "cache", "does not appear", "no such")
        ):
            raise not_available(ref) from None
        raise ModelNotAvailable(f"cannot load {ref!r}: {' '.join(str(exc).split())[:200]}") from None


def placement(device: str = "auto", dtype: str = "auto", cuda_auto: str = "float16") -> tuple[str, Any]:
    """Where and in what precision a backend's models live: (device, torch dtype), with the libraries
    quietened first. Every backend constructor starts here, then loads with :func:`from_pretrained`.
    ``cuda_auto`` is what ``auto`` means on CUDA (the backend's :attr:`Backend.cuda_dtype`)."""
    quiet_libraries()
    dev = pick_device(device)
    return dev, pick_dtype(dtype, dev, cuda_auto)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(f"--device {device}: CUDA is not available on this machine")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise BadInput(f"--device must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
    return device


def pick_dtype(dtype: str, device: str, cuda_auto: str = "float16") -> Any:
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype == "auto":
        return table[cuda_auto] if device.startswith("cuda") else torch.float32
    if dtype not in table:
        raise BadInput(f"--dtype must be auto, float32, float16 or bfloat16, got {dtype!r}")
    return table[dtype]

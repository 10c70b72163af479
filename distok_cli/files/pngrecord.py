"""The ``distok`` record of a rendered PNG (spec: ``formats/distok-png-record-v1.md``): written beside an
A1111-style ``parameters`` chunk, and read strictly.

Pillow and the schema checker only: ``gallery`` reads records without loading torch.
"""

from __future__ import annotations

import io
import json
from typing import Any

from distok_cli.errors import BadInput
from distok_cli.files import frame, schema

MAX_PNG_BYTES = 256 << 20


def read(path: str) -> dict[str, Any]:
    """The record of the PNG at ``path``, read from a regular file under a size cap and checked against
    ``distok-png-record-v1.schema.json`` before any field is used."""
    from PIL import Image, UnidentifiedImageError

    data = frame.read_regular(path, MAX_PNG_BYTES, "PNG image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            text = im.text.get("distok") if hasattr(im, "text") else None
    except (OSError, UnidentifiedImageError, ValueError):
        raise BadInput(f"{path}: not a readable image") from None
    if not text:
        raise BadInput(f"{path}: has no distok metadata (was it rendered by distok render?)")
    return schema.decode(text, "", "distok-png-record-v1", f"{path}: distok metadata")


def png_bytes(image: Any, parameters: str, meta: dict[str, Any]) -> bytes:
    """PNG with an A1111-style ``parameters`` text chunk and a ``distok`` JSON chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", parameters)
    info.add_text("distok", json.dumps(meta, sort_keys=True, separators=(",", ":")))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def a1111_parameters(prompt: str, seed: int, s: Any, models: dict[str, str], token_id: str) -> str:
    model = ", ".join(f"{k}: {v}" for k, v in models.items())
    return (
        f"{prompt}\nSteps: {s.steps}, Prior steps: {s.prior_steps}, CFG scale: {s.guidance}, "
        f"Prior CFG scale: {s.prior_guidance}, Seed: {seed}, Size: {s.size}x{s.size}, Model: {model}, "
        f'TI hashes: "<>: {token_id.split(":", 1)[1][:10]}", Version: distok'
    )

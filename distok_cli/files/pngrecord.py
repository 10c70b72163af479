"""The ``distok`` record of a rendered PNG (spec: ``formats/distok-png-record-v1.md``), read strictly.

Pillow and the schema checker only: ``gallery`` reads records without loading torch.
"""

from __future__ import annotations

import io
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

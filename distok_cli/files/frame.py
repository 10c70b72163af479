"""The one safetensors reader: every token file and checkpoint distok opens is framed here.

A frame is checked completely before a byte of it is trusted: a regular file under a size cap (a FIFO or
a device is refused before it is opened), the 8-byte header length, a strict JSON header (no duplicate
keys, no NaN, bounded nesting), ``__metadata__`` mapping strings to strings, each tensor entry exactly
``{dtype, shape, data_offsets}`` with a known dtype, and tensors that tile the data section exactly, in
order, with no gap, overlap or trailing byte. What the metadata *means* is checked by the callers
against the shipped JSON Schemas (:mod:`distok_cli.files.schema`).

Only numpy is imported: ``inspect``, ``diff``, ``encode`` and ``sample`` must start fast.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from distok_cli.errors import InvalidTokenFile
from distok_cli.files import schema

#: Largest header (JSON) a reader accepts, in bytes.
MAX_HEADER_BYTES = 1 << 20
MAX_DIMS = 8
#: dtype name → (numpy dtype of the stored bytes, bytes per element)
DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}


@dataclass(frozen=True)
class Frame:
    """A parsed safetensors file: tensors (as float32 arrays, in file order), their stored dtypes, metadata."""

    tensors: dict[str, np.ndarray]
    dtypes: dict[str, str]
    metadata: dict[str, str]
    path: str


def bad(path: str, reason: str) -> InvalidTokenFile:
    return InvalidTokenFile(f"{path}: {reason}")


def read_regular(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes: a FIFO, a device (``/dev/zero``) or a folder
    is refused before it is opened, so no read can block or grow without bound."""
    p = str(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InvalidTokenFile(f"{p}: no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InvalidTokenFile(f"{p!r}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidTokenFile(f"{p}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidTokenFile(f"{p}: not a regular file (a pipe or a device is not a {what})")
    if st.st_size > limit:
        raise InvalidTokenFile(f"{p}: larger than a {what} can be ({limit >> 20} MiB)")
    try:
        with open(p, "rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise InvalidTokenFile(f"{p}: cannot read ({exc.strerror})") from None


def _looks_like_pickle(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04" or (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def parse(data: bytes, path: str = "<bytes>", dtypes: tuple[str, ...] = tuple(DTYPES)) -> Frame:
    """Check the whole safetensors frame of ``data``; raise :class:`InvalidTokenFile` with one line."""
    try:
        return _parse(data, path, dtypes)
    except InvalidTokenFile:
        # Only once the framing has failed: a valid header length can start with these bytes.
        if _looks_like_pickle(data):
            raise bad(path, "looks like a PyTorch pickle; distok reads safetensors only (convert it first)") from None
        raise


def _parse(data: bytes, path: str, dtypes: tuple[str, ...]) -> Frame:
    if len(data) < 8:
        raise bad(path, "not a safetensors file (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:
        if n > len(data):
            raise bad(path, f"not a safetensors file or truncated (header length {n} > file size)")
        raise bad(path, f"metadata too large ({n} bytes; limit {MAX_HEADER_BYTES})")
    if 8 + n > len(data):
        raise bad(path, f"truncated (header needs {n} bytes, file has {len(data) - 8})")
    raw = data[8 : 8 + n]
    if not raw.lstrip(b" ").startswith(b"{"):
        raise bad(path, "not a safetensors file (header is not a JSON object)")
    try:
        header = schema.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(path, f"malformed safetensors header (invalid JSON): {exc}") from None
    if not isinstance(header, dict):
        raise bad(path, "malformed safetensors header (not a JSON object)")
    meta = header.pop("__metadata__", None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise bad(path, "__metadata__ must map strings to strings")
    body = data[8 + n :]
    entries = []
    for name, info in header.items():
        entries.append((_offsets(path, name, info, dtypes), name, info))
    entries.sort(key=lambda e: e[0])
    end = 0
    tensors: dict[str, np.ndarray] = {}
    found: dict[str, str] = {}
    for (start, stop), name, _ in entries:
        if start != end:
            raise bad(
                path,
                f"tensor {name!r}: data_offsets {[start, stop]} leave a gap or overlap (expected to start at {end})",
            )
        end = stop
    if end != len(body):
        raise bad(path, f"truncated or padded (tensor data is {len(body)} bytes, header says {end})")
    for (start, stop), name, info in sorted(entries, key=lambda e: e[1]):
        np_dtype, _ = DTYPES[info["dtype"]]
        arr = np.frombuffer(body, dtype=np_dtype, count=(stop - start) // DTYPES[info["dtype"]][1], offset=start)
        arr = arr.reshape(info["shape"])
        if info["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = arr.astype(np.float32)  # a writable copy (torch warns on read-only buffers)
        found[name] = info["dtype"]
    return Frame(tensors, found, meta, path)


def _offsets(path: str, name: str, info: Any, dtypes: tuple[str, ...]) -> tuple[int, int]:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise bad(path, f"tensor {name!r} has a malformed header entry (needs exactly dtype, shape, data_offsets)")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES or dtype not in dtypes:
        shown = dtype if isinstance(dtype, str) else repr(dtype)
        raise bad(path, f"tensor {name!r} has dtype {shown[:40]}, expected {' or '.join(dtypes)}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1 << 40 for s in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
    ):
        raise bad(path, f"tensor {name!r} has a malformed shape or data_offsets")
    start, stop = offsets
    if stop - start != math.prod(shape) * DTYPES[dtype][1]:
        raise bad(path, f"tensor {name!r}: data_offsets {offsets} do not match shape {shape}")
    return start, stop


def read(path: str | os.PathLike[str], limit: int, what: str, dtypes: tuple[str, ...] = tuple(DTYPES)) -> Frame:
    """Read and frame-check a safetensors file of at most ``limit`` bytes."""
    p = str(path)
    return parse(read_regular(p, limit, what), p, dtypes)

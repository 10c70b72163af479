"""The ``.distok`` token file, formats 1.0 and 2.0 (normative spec: ``formats/distok-token-v2.md``).

A one-part token (format 1.0) is a safetensors file with exactly one tensor, ``emb_params``, float32,
shape ``[1, d]``; a token with one part per text encoder (format 2.0, e.g. SDXL's ``clip_l`` [1, 768] and
``clip_g`` [1, 1280]) has one tensor per part, named after it. Everything else is namespaced strings in
``__metadata__``. In memory a token is one vector, its parts concatenated in the token space's order.

The writer here serialises the header itself (sorted keys, fixed separators, space padding to 8 bytes) so
that the same inputs always give the same bytes; the reader parses and checks every byte range before it
trusts anything, so corrupt files fail with one line instead of a traceback. Plain textual-inversion
safetensors files (one tensor of shape ``[d]`` or ``[1, d]``, any key; or SDXL's ``clip_l`` + ``clip_g``)
are read too, as tokens without provenance. Pickles never are.

Only numpy is imported: ``inspect``, ``diff``, ``encode`` and ``sample`` must start fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli._version import __version__
from distok_cli.errors import BadInput
from distok_cli.files import distributions as dists
from distok_cli.files import frame, schema
from distok_cli.files.frame import MAX_HEADER_BYTES, read_regular
from distok_cli.files.safety import atomic_write, check_new_path, fsync_dir, locked
from distok_cli.files.space import (
    FLUX_LAYOUT,
    SDXL_LAYOUT,
    TENSOR_ALIASES,
    TENSOR_KEY,
    TokenSpace,
    space_from_json,
    split,
)
from distok_cli.progress import Progress

FORMAT_NAME = "distok.token"
FORMAT_VERSION = "1.0"  # one-part tokens: still written as 1.0, so older readers keep reading them
PARTS_VERSION = "2.0"  # tokens with named parts (one vector per text encoder)
RENAMED_VERSION = "2.1"  # an export whose part tensors carry the names a peer reads (distok.export tensor_names)
READ_MAJORS = ("1", "2")
SOURCE_KINDS = ("distribution", "latent", "composition", "pool")
PRIORS = ("gaussian", "laplace", "cauchy")
TOKEN_SUFFIXES = (".distok", ".safetensors")  # what a path must end with to be read as a token

K_FORMAT = "distok.format"
K_VERSION = "distok.format_version"
K_CONTENT = "distok.content_id"
K_SPACE = "distok.token_space"
K_SOURCE = "distok.source"
K_ESTIMATE = "distok.estimate"
K_MODEL = "distok.model"
K_TOOL = "distok.tool_version"
K_EXPORT = "distok.export"
JSON_KEYS = (K_SPACE, K_SOURCE, K_ESTIMATE, K_MODEL, K_EXPORT)
KNOWN_KEYS = {K_FORMAT, K_VERSION, K_CONTENT, K_SPACE, K_SOURCE, K_ESTIMATE, K_MODEL, K_TOOL, K_EXPORT}


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, ASCII, NaN refused: the one JSON spelling distok writes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_id(vector: np.ndarray) -> str:
    """``sha256:`` + hex digest of the tensor's float32 little-endian bytes."""
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(vector, dtype="<f4").tobytes()).hexdigest()


@dataclass(frozen=True)
class Token:
    """One creative token: a vector plus what is known about where it came from.

    ``source``/``estimate``/``model`` are the parsed JSON objects of the metadata (``None`` when absent);
    ``plain`` is True for a community textual-inversion file with no distok metadata.
    """

    vector: np.ndarray
    space: TokenSpace | None = None
    source: dict[str, Any] | None = None
    estimate: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    title: str | None = None
    tool_version: str = __version__
    extra: dict[str, str] = field(default_factory=dict)
    plain: bool = False
    path: str | None = None
    exported: dict[str, Any] | None = None  # the distok.export record of files written by `distok export` (§10)
    #: a plain file's parts ((name, dim), ...); a distok token's come from its space
    plain_layout: tuple[tuple[str, int], ...] = ()

    @property
    def dim(self) -> int:
        return int(self.vector.shape[-1])

    @property
    def layout(self) -> tuple[tuple[str, int], ...]:
        """((part name, width), ...) for a token with parts, () for one vector."""
        return self.space.layout if self.space is not None else self.plain_layout

    def part_vectors(self) -> dict[str, np.ndarray]:
        """Each part's slice of the vector, by name ({} for a one-part token)."""
        return split(self.vector, self.layout)

    @property
    def id(self) -> str:
        return content_id(self.vector)

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    def with_estimate(self, estimate: dict[str, Any]) -> Token:
        return replace(self, estimate=estimate)

    @property
    def lineage(self) -> dict[str, Any]:
        """Where the token came from, in one dict: ``kind`` (distribution, latent, composition, pool or
        plain), and what is known of ``distribution``, ``parents`` (content ids and weights), ``latent``
        (prior, seed, index), ``sweep`` (path, index, t), ``refine``, ``model`` (hash, recipe) and ``export``."""
        src = self.source or {}
        out: dict[str, Any] = {"kind": "plain" if self.plain else src.get("kind"), "id": self.id}
        if isinstance(src.get("distribution"), dict):
            out["distribution"] = src["distribution"]
        if src.get("parents"):
            out["parents"] = src["parents"]
        if src.get("kind") == "latent":
            out["latent"] = {k: src[k] for k in ("prior", "scale", "seed", "index") if k in src}
        for key in ("sweep", "refine"):
            if key in src:
                out[key] = src[key]
        if self.model:
            out["model"] = self.model
        if self.exported:
            out["export"] = self.exported
        return out

    def save(self, path: str | os.PathLike[str], overwrite: bool = True) -> str:
        """Write the token file (atomically; without ``overwrite`` an existing file is refused). Returns the path."""
        return save(self, path, overwrite)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Token:
        """Read and validate a token file (``.distok``, an export, or a plain textual-inversion file)."""
        return load(path)

    def export(
        self,
        to: str,
        dest: str | os.PathLike[str] = ".",
        name: str = "{title}-{id6}",
        dtype: str = "float32",
        base: str = "auto",
        overwrite: bool = False,
    ) -> str:
        """Write ``NAME.safetensors`` for ComfyUI, AUTOMATIC1111, InvokeAI or diffusers (``to``) into ``dest``,
        as ``distok export`` does; returns the path."""
        from distok_cli.files import export as exp

        if to not in exp.TARGETS:
            raise BadInput(f"--to must be {', '.join(list(exp.TARGETS)[:-1])} or {list(exp.TARGETS)[-1]}, got {to!r}")
        jobs = exp.plan([self], exp.TARGETS[to], Path(dest).expanduser(), name, dtype, overwrite, to_bytes, base)
        return exp.write(jobs, overwrite)[0]


# ----------------------------------------------------------------------------------------------- write


def metadata_for(token: Token) -> dict[str, str]:
    """The ``__metadata__`` map for ``token`` (validated, every value a string)."""
    if token.space is None:
        raise BadInput("a distok token file needs a token space (encoder, dim, fingerprint)")
    if token.source is None:
        raise BadInput("a distok token file needs a source")
    vec = np.asarray(token.vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != token.space.dim:
        raise BadInput(f"vector has {vec.shape[0]} values but the token space has dim {token.space.dim}")
    if not np.isfinite(vec).all():
        raise BadInput("vector has NaN or Inf values")
    # The reader's rules, so that whatever is written reads back: the schema, then the sums.
    for value, definition in (
        (token.source, "source"),
        (token.estimate, "estimate"),
        (token.model, "model"),
        (token.exported, "export"),
    ):
        if value is not None:
            schema.validate(value, definition, SCHEMA, definition)
    _check_sums(token.source, token.estimate)
    meta = {
        K_FORMAT: FORMAT_NAME,
        K_VERSION: _version(token),
        K_CONTENT: content_id(vec),
        K_SPACE: canonical_json(token.space.to_json()),
        K_SOURCE: canonical_json(token.source),
        K_TOOL: token.tool_version,
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": _architecture(token.space),
        "modelspec.implementation": "distok",
        "modelspec.title": token.title or f"distok-{content_id(vec)[7:19]}",
    }
    if token.estimate is not None:
        meta[K_ESTIMATE] = canonical_json(token.estimate)
    if token.model is not None:
        meta[K_MODEL] = canonical_json(token.model)
    if token.exported is not None:
        meta[K_EXPORT] = canonical_json(token.exported)
    for k, v in token.extra.items():
        if k in meta or not isinstance(v, str):
            continue
        meta[k] = v
    return meta


def _version(token: Token) -> str:
    if not token.layout:
        return FORMAT_VERSION
    return RENAMED_VERSION if token.exported is not None and token.exported.get("tensor_names") else PARTS_VERSION


def _architecture(space: TokenSpace) -> str:
    if space.layout == SDXL_LAYOUT:
        return "stable-diffusion-xl-v1-base/textual-inversion"
    if space.layout == FLUX_LAYOUT:
        return "flux-1/textual-inversion"
    if not space.parts and space.dim == 768:
        return "stable-diffusion-v1/textual-inversion"
    return "distok/token"


_ST_DTYPES = {
    "float32": "F32",
    "float64": "F64",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "uint8": "U8",
    "bool": "BOOL",
}


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str], keep_dtype: bool = False) -> bytes:
    """Deterministic safetensors serialisation: tensors in name order, sorted header, space padding.
    Tensors become float32 unless ``keep_dtype`` (then any of the dtypes in ``_ST_DTYPES``, little-endian)."""
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<") if keep_dtype else "<f4")
        data = arr.tobytes()
        dtype = _ST_DTYPES[arr.dtype.name] if keep_dtype else "F32"
        header[name] = {"data_offsets": [offset, offset + len(data)], "dtype": dtype, "shape": list(arr.shape)}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def tensor_names(token: Token) -> dict[str, str]:
    """Part name → the name of its tensor in the file: the part's own, unless an export renamed it."""
    renamed = (token.exported or {}).get("tensor_names", {})
    return {name: renamed.get(name, name) for name, _ in token.layout}


def tensors_of(token: Token) -> dict[str, np.ndarray]:
    """The tensors a token file holds: ``emb_params`` [1, d], or one [1, d_part] per part (under the name
    an export gave it, e.g. ComfyUI's ``t5xxl`` for FLUX's ``t5``)."""
    vec = np.asarray(token.vector, dtype=np.float32).reshape(-1)
    if not token.layout:
        return {TENSOR_KEY: vec.reshape(1, -1)}
    names = tensor_names(token)
    return {names[name]: part.reshape(1, -1) for name, part in split(vec, token.layout).items()}


def to_bytes(token: Token) -> bytes:
    """Serialise ``token`` to the exact bytes of its token file (deterministic)."""
    meta = metadata_for(token)
    tensors = tensors_of(token)
    if token.exported is not None and token.exported["dtype"] == "float16":
        return safetensors_bytes({k: v.astype(np.float16) for k, v in tensors.items()}, meta, keep_dtype=True)
    return safetensors_bytes(tensors, meta)


def save(token: Token, path: str | os.PathLike[str], overwrite: bool = True) -> str:
    """Atomically write ``token`` to ``path`` (refusing an existing file unless ``overwrite``). Returns the path.

    Example:
        >>> save(Token(vec, space=space, source={"kind": "distribution", "distribution": {"cat": 1.0}}), "cat.distok")
    """
    atomic_write(path, to_bytes(token), overwrite)
    return str(path)


def update(path: str | os.PathLike[str], change: Callable[[Token], Token]) -> str:
    """Read-modify-write a token file under :func:`locked`: ``change`` gets the file as it is now (another
    process may have rewritten it since it was first read) and returns the token to write."""
    with locked(path):
        atomic_write(path, to_bytes(change(load(path))))
    return str(path)


# ------------------------------------------------------------------------------------------------ read

_bad = frame.bad

SCHEMA = "distok-token-v2"
#: decoded metadata key → its definition in the token schema
_DEFS = {K_SPACE: "token_space", K_SOURCE: "source", K_ESTIMATE: "estimate", K_MODEL: "model", K_EXPORT: "export"}


def _json_value(path: str, meta: dict[str, str], key: str) -> Any:
    text = meta.get(key)
    if text is None:
        return None
    try:
        return schema.decode(text, _DEFS[key], SCHEMA, f"metadata {key}")
    except BadInput as exc:
        raise _bad(path, str(exc)) from None


def _check_sums(source: dict[str, Any], estimate: dict[str, Any] | None) -> None:
    """What the schema cannot say: each distribution sums to 1 (and its weights are finite)."""
    if "distribution" in source:
        dists.check(source["distribution"], "source distribution")
    if estimate is not None:
        dists.check(estimate["distribution"], "estimate distribution")


def from_bytes(data: bytes, path: str = "<bytes>") -> Token:
    """Parse token-file bytes (a distok file of format 1.x or 2.x, or a plain textual-inversion file)."""
    fr = frame.parse(data, path)
    meta = fr.metadata
    if not fr.tensors:
        raise _bad(path, "no tensor (a token file holds one, or one per part)")
    plain = not any(k.startswith("distok.") for k in meta)
    if not plain and K_FORMAT not in meta:
        raise _bad(path, f"metadata has distok keys but lacks {K_FORMAT}")
    if plain:
        arr, layout, title = _plain_vector(path, fr)
        if not np.isfinite(arr).all():
            raise _bad(path, "tensor has NaN or Inf values")
        return Token(
            vector=arr, plain=True, path=path, title=title, tool_version="", extra=dict(meta), plain_layout=layout
        )
    if meta[K_FORMAT] != FORMAT_NAME:
        raise _bad(path, f"unknown format {meta[K_FORMAT][:40]!r} (expected {FORMAT_NAME})")
    version = meta.get(K_VERSION, "")
    major = version.split(".")[0]
    if major not in READ_MAJORS:
        raise _bad(path, f"unsupported format version {version[:40]!r} (this distok reads 1.x and 2.x)")
    values = {k: _json_value(path, meta, k) for k in JSON_KEYS}
    space = values[K_SPACE]
    if space is None:
        raise _bad(path, f"metadata lacks {K_SPACE}")
    try:
        parsed = space_from_json(space)
    except BadInput as exc:
        raise _bad(path, str(exc)) from None
    layout = parsed.layout
    if bool(layout) != (major == "2"):
        raise _bad(
            path,
            "format 1.x tokens have one vector and 2.x tokens have parts"
            if major == "1" or layout
            else "a format 2.x token space must list its parts",
        )
    export = values[K_EXPORT]
    renamed = (export or {}).get("tensor_names", {})
    if renamed and (set(renamed) - {n for n, _ in layout} or version in (FORMAT_VERSION, PARTS_VERSION)):
        raise _bad(path, f"export tensor_names {sorted(renamed)} need format 2.1 and name parts of the token")
    names = [renamed.get(n, n) for n, _ in layout] or [TENSOR_KEY]
    if sorted(fr.tensors) != sorted(names):
        raise _bad(path, f"tensors are {_names(fr.tensors)}, expected {', '.join(names)}")
    want = "F16" if export is not None and export["dtype"] == "float16" else "F32"
    rows = []
    for name, width in zip(names, [d for _, d in layout] or [None]):
        arr = fr.tensors[name]
        if fr.dtypes[name] != want:
            raise _bad(path, f"tensor {name} has dtype {fr.dtypes[name]}, expected {want}")
        if arr.ndim != 2 or arr.shape[0] != 1 or arr.shape[1] == 0:
            raise _bad(path, f"tensor {name} has shape {list(arr.shape)}, expected [1, d]")
        if width is not None and arr.shape[1] != width:
            raise _bad(path, f"tensor {name} has shape {list(arr.shape)}, expected [1, {width}]")
        rows.append(arr[0])
    vec = np.concatenate(rows) if len(rows) > 1 else rows[0]
    if not np.isfinite(vec).all():
        raise _bad(path, "tensor has NaN or Inf values")
    return _token_from_meta(vec, meta, values, parsed, path)


def _names(tensors: dict[str, Any]) -> str:
    return ", ".join(repr(n[:40]) for n in list(tensors)[:4]) + (" …" if len(tensors) > 4 else "")


def _plain_vector(path: str, fr: frame.Frame) -> tuple[np.ndarray, tuple[tuple[str, int], ...], str]:
    """A plain file's vector, layout and title: one tensor ([d] or [1, d], any key), SDXL's two
    (``clip_l``, ``clip_g``) or FLUX's two (``clip_l`` and ``t5``, or ComfyUI's ``t5xxl``)."""
    parts = {TENSOR_ALIASES.get(n, n): n for n in fr.tensors}
    for layout in (SDXL_LAYOUT, FLUX_LAYOUT):
        if len(fr.tensors) != len(layout) or set(parts) != {n for n, _ in layout}:
            continue
        rows = []
        for name, dim in layout:
            arr = fr.tensors[parts[name]]
            if arr.shape not in ((dim,), (1, dim)):
                raise _bad(
                    path,
                    f"tensor {parts[name]!r} has shape {list(arr.shape)}; distok reads one vector per "
                    f"encoder ([{dim}] or [1, {dim}])",
                )
            rows.append(arr.reshape(-1))
        return np.concatenate(rows), layout, "+".join(n for n, _ in layout)
    if len(fr.tensors) != 1:
        raise _bad(
            path,
            f"{len(fr.tensors)} tensors ({_names(fr.tensors)}): a plain embedding holds one, "
            "SDXL's clip_l and clip_g, or FLUX's clip_l and t5 (t5xxl)",
        )
    name, arr = next(iter(fr.tensors.items()))
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise _bad(path, f"tensor {name!r} has shape {list(arr.shape)}; a token is [d] or [1, d]")
    return arr, (), name


def _token_from_meta(
    arr: np.ndarray, meta: dict[str, str], values: dict[str, Any], parsed: TokenSpace, path: str
) -> Token:
    """A distok token from its vector, metadata, the metadata's decoded (schema-checked) JSON values and its
    parsed token space."""
    try:
        schema.validate(meta, "", SCHEMA, "metadata")
    except BadInput as exc:
        raise _bad(path, str(exc)) from None
    if meta[K_CONTENT] != content_id(arr):
        raise _bad(path, "content id does not match the tensor (file altered or corrupt)")
    space = values[K_SPACE]
    if space["dim"] != arr.shape[0]:
        raise _bad(path, f"token space dim {space['dim']} does not match the tensor ({arr.shape[0]})")
    try:
        _check_sums(values[K_SOURCE], values[K_ESTIMATE])
    except BadInput as exc:
        raise _bad(path, str(exc)) from None
    extra = {k: v for k, v in meta.items() if k not in KNOWN_KEYS and not k.startswith("modelspec.")}
    return Token(
        vector=arr,
        space=parsed,
        source=values[K_SOURCE],
        estimate=values[K_ESTIMATE],
        model=values[K_MODEL],
        exported=values[K_EXPORT],
        title=meta.get("modelspec.title"),
        tool_version=meta.get(K_TOOL, ""),
        extra=extra,
        path=path,
    )


def load(path: str | os.PathLike[str]) -> Token:
    """Read and validate a token file. Raises :class:`InvalidTokenFile` with a one-line reason."""
    p = str(path)
    return from_bytes(read_regular(p, MAX_HEADER_BYTES + (1 << 24) + 9, "token file"), p)


def write_tokens(
    tokens: Iterable[Token], paths: list[Path], overwrite: bool, progress: Progress | None = None, chunk: int = 64
) -> Iterator[str]:
    """Write tokens to ``paths`` as they come, yielding each path once it is durable.

    Names are checked before anything is written (so a clash writes nothing); each file is written to a
    temporary file, fsynced and moved in (without ``overwrite`` by a hard link, so a racing writer cannot
    be overwritten); every ``chunk`` files the folders are fsynced and those paths are yielded. So after a
    crash no file is half-written, and every path yielded (printed) names a complete file.
    """
    check_new_path(paths, overwrite)
    done: list[str] = []
    for tok, p in zip(tokens, paths):
        done.append(save(tok, p, overwrite))
        if progress is not None:
            progress(1)
        if len(done) >= chunk:
            yield from _durable(done)
            done = []
    yield from _durable(done)


def _durable(paths: list[str]) -> list[str]:
    for folder in {str(Path(p).parent) for p in paths}:
        fsync_dir(folder)
    return paths

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

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli._version import __version__
from distok_cli.errors import BadInput, DistokError
from distok_cli.files import distributions as dists
from distok_cli.files import frame, schema
from distok_cli.files.frame import MAX_HEADER_BYTES, read_regular

FORMAT_NAME = "distok.token"
FORMAT_VERSION = "1.0"  # one-part tokens: still written as 1.0, so older readers keep reading them
PARTS_VERSION = "2.0"  # tokens with named parts (one vector per text encoder)
READ_MAJORS = ("1", "2")
TENSOR_KEY = "emb_params"
#: A part's name is its tensor's name: lowercase, 1 to 32 characters, never ``emb_params``.
PART_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: Part layouts that peer tools know by name (``modelspec.architecture``, the plain-file reader).
SDXL_LAYOUT = (("clip_l", 768), ("clip_g", 1280))
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
class SpacePart:
    """One text encoder's share of a token: its name (the tensor's), width, subfolder and fingerprint."""

    name: str
    dim: int
    fingerprint: str
    subfolder: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dim": self.dim, "fingerprint": self.fingerprint, "name": self.name}
        if self.subfolder:
            out["subfolder"] = self.subfolder
        return out


def parts_fingerprint(parts: tuple[SpacePart, ...]) -> str:
    """A parted space's fingerprint: sha256 over ``name:dim:fingerprint;`` of each part, in order."""
    h = hashlib.sha256("".join(f"{p.name}:{p.dim}:{p.fingerprint};" for p in parts).encode())
    return "fp16-sha256:" + h.hexdigest()


@dataclass(frozen=True)
class TokenSpace:
    """Which text encoder's token-embedding space a vector lives in; with ``parts``, one space per text
    encoder (SDXL: CLIP-L and OpenCLIP-G), the vector being the parts concatenated in this order."""

    encoder: str
    dim: int
    fingerprint: str
    subfolder: str = ""
    parts: tuple[SpacePart, ...] = ()

    @classmethod
    def with_parts(cls, encoder: str, parts: tuple[SpacePart, ...]) -> TokenSpace:
        return cls(encoder, sum(p.dim for p in parts), parts_fingerprint(parts), "", parts)

    @property
    def layout(self) -> tuple[tuple[str, int], ...]:
        return tuple((p.name, p.dim) for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dim": self.dim, "encoder": self.encoder, "fingerprint": self.fingerprint}
        if self.subfolder:
            out["subfolder"] = self.subfolder
        if self.parts:
            out["parts"] = [p.to_json() for p in self.parts]
        return out

    def compatible(self, other: TokenSpace) -> bool:
        """Same vectors mean the same thing: equal layout, dimension and embedding-matrix fingerprint(s)."""
        return self.dim == other.dim and self.fingerprint == other.fingerprint and self.layout == other.layout

    def describe(self) -> str:
        if not self.parts:
            return f"{self.dim}-d"
        return " + ".join(f"{n} ({d})" for n, d in self.layout)


def describe_layout(layout: tuple[tuple[str, int], ...], dim: int) -> str:
    return " + ".join(f"{n} ({d})" for n, d in layout) if layout else f"one {dim}-d vector"


def check_compatible(token: Token, space: TokenSpace) -> None:
    """Refuse ``token`` in ``space``: another fingerprint, or (a plain file, no provenance) another layout."""
    what = token.path or token.short_id
    if token.layout != space.layout or token.dim != space.dim:
        raise BadInput(
            f"{what}: token has {describe_layout(token.layout, token.dim)}, {space.encoder} expects "
            f"{describe_layout(space.layout, space.dim)}"
        )
    if token.space is not None and not token.space.compatible(space):
        raise BadInput(
            f"{what} was made for {token.space.encoder} (fingerprint {token.space.fingerprint[:24]}…), "
            f"not {space.encoder} ({space.fingerprint[:24]}…)"
        )


def space_fingerprint(matrix: np.ndarray) -> str:
    """Fingerprint of a token-embedding matrix: sha256 of its float16 little-endian bytes, shape-prefixed.

    Rounding to float16 first makes the fingerprint the same whether the encoder was loaded in float32
    or float16.
    """
    m = np.ascontiguousarray(matrix, dtype="<f2")
    h = hashlib.sha256(f"{m.shape[0]}x{m.shape[1]}:".encode())
    h.update(m.tobytes())
    return "fp16-sha256:" + h.hexdigest()


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

    def export(self, to: str, dest: str | os.PathLike[str] = ".", name: str = "{title}-{id6}", dtype: str = "float32",
               base: str = "auto", overwrite: bool = False) -> str:
        """Write ``NAME.safetensors`` for ComfyUI, AUTOMATIC1111, InvokeAI or diffusers (``to``) into ``dest``,
        as ``distok export`` does; returns the path."""
        from distok_cli.files import export as exp

        if to not in exp.TARGETS:
            raise BadInput(f"--to must be {', '.join(list(exp.TARGETS)[:-1])} or {list(exp.TARGETS)[-1]}, got {to!r}")
        jobs = exp.plan([self], exp.TARGETS[to], Path(dest).expanduser(), name, dtype, overwrite, base)
        return exp.write(jobs, overwrite)[0]


def split(vector: np.ndarray, layout: tuple[tuple[str, int], ...]) -> dict[str, np.ndarray]:
    """A concatenated vector's parts, by name ({} for no layout)."""
    out, at = {}, 0
    for name, dim in layout:
        out[name] = vector[..., at : at + dim]
        at += dim
    return out


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
    for value, definition in ((token.source, "source"), (token.estimate, "estimate"), (token.model, "model"),
                              (token.exported, "export")):
        if value is not None:
            schema.validate(value, definition, SCHEMA, definition)
    _check_sums(token.source, token.estimate)
    meta = {
        K_FORMAT: FORMAT_NAME,
        K_VERSION: PARTS_VERSION if token.space.parts else FORMAT_VERSION,
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


def _architecture(space: TokenSpace) -> str:
    if space.layout == SDXL_LAYOUT:
        return "stable-diffusion-xl-v1-base/textual-inversion"
    if not space.parts and space.dim == 768:
        return "stable-diffusion-v1/textual-inversion"
    return "distok/token"


_ST_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64", "int32": "I32", "uint8": "U8", "bool": "BOOL"}


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


def tensors_of(token: Token) -> dict[str, np.ndarray]:
    """The tensors a token file holds: ``emb_params`` [1, d], or one [1, d_part] per part."""
    vec = np.asarray(token.vector, dtype=np.float32).reshape(-1)
    if not token.layout:
        return {TENSOR_KEY: vec.reshape(1, -1)}
    return {name: part.reshape(1, -1) for name, part in split(vec, token.layout).items()}


def to_bytes(token: Token) -> bytes:
    """Serialise ``token`` to the exact bytes of its token file (deterministic)."""
    meta = metadata_for(token)
    tensors = tensors_of(token)
    if token.exported is not None and token.exported["dtype"] == "float16":
        return safetensors_bytes({k: v.astype(np.float16) for k, v in tensors.items()}, meta, keep_dtype=True)
    return safetensors_bytes(tensors, meta)


_UMASK: int | None = None


def _file_mode() -> int:
    """What a plain ``open()`` would give a new file: 0o666 minus the process umask."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def _replaced_mode(path: Path) -> int:
    """The mode of the file ``path`` names, kept when it is replaced (``estimate --write`` must not
    change who can read a token); a new file's mode when there is none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return _file_mode()
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else _file_mode()


def atomic_write(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then move it in.

    With ``overwrite`` the move is ``os.replace``. Without it the move is a hard link, which fails if
    ``path`` exists, so of two writers racing for one name exactly one wins and the other gets
    :class:`BadInput` (no check-then-replace window). A new file gets the mode ``open()`` would give it;
    a replaced file keeps its mode.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    except (OSError, ValueError) as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _replaced_mode(path) if overwrite else _file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_exclusive(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _move_exclusive(tmp: str, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if no file has that name, atomically: a hard link fails if the name
    exists. Where hard links are not supported (exFAT, some network shares), the name is claimed with
    ``O_EXCL`` first and then replaced by the finished file."""
    try:
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            raise BadInput(f"{path} exists (use --overwrite to replace)") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise BadInput(f"{path} exists (use --overwrite to replace)") from None
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def safe_name(text: str, limit: int = 120) -> str:
    """``text`` as one harmless file name: no folders (``/``, ``\\``), no NUL or control characters, no
    leading dot, at most ``limit`` characters; ``token`` if nothing is left."""
    name = "".join("_" if (c in "/\\" or ord(c) < 32 or c == "\x7f") else c for c in text)
    name = name.lstrip(".").strip()[:limit]
    return name or "token"


#: errno values that mean the output path itself is wrong (exit 2), not that the machine failed (exit 1)
_PATH_ERRNOS = {errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                errno.EROFS, errno.ENOENT, errno.ELOOP}


def write_error(path: str | os.PathLike[str], exc: OSError | ValueError) -> DistokError:
    """One line for a failed write: :class:`BadInput` when the path is at fault, else an exit-1 error."""
    reason = getattr(exc, "strerror", None) or str(exc)
    cls = BadInput if isinstance(exc, ValueError) or getattr(exc, "errno", None) in _PATH_ERRNOS else DistokError
    return cls(f"cannot write {str(path)!r}: {reason}")


def check_target(path: str | os.PathLike[str], folder: bool = False, what: str = "-o") -> Path:
    """Refuse an output path that cannot be written, before any work is done: a NUL, a name longer than
    255 bytes, a file where a folder must be (``-o FILE`` for a folder, or a file among the parents), a
    folder where the file must go, or a read-only folder or file system."""
    text = os.fspath(path)
    if "\0" in text:
        raise BadInput(f"{what}: a path cannot contain a NUL character")
    p = Path(text)
    for part in p.parts:
        if len(os.fsencode(part)) > 255:
            raise BadInput(f"{what}: the name {part[:24]}… is longer than 255 bytes")
    if p.exists():
        if folder and not p.is_dir():
            raise BadInput(f"{what} {p}: exists and is not a folder")
        if not folder and p.is_dir():
            raise BadInput(f"{what} {p}: is a folder (give a file name)")
    for parent in ([p] if folder and p.is_dir() else []) + list(p.parents):
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(f"{what} {p}: {parent} is a file, not a folder")
            # A read-only folder or file system (EROFS: even root cannot write there): refuse now, not
            # after the work; os.access asks the kernel, so it sees mount flags as well as modes.
            if not os.access(parent, os.W_OK | os.X_OK):
                raise BadInput(f"{what} {p}: {parent} is read-only")
            break
    return p


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make the names moved into ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(token: Token, path: str | os.PathLike[str], overwrite: bool = True) -> str:
    """Atomically write ``token`` to ``path`` (refusing an existing file unless ``overwrite``). Returns the path.

    Example:
        >>> save(Token(vec, space=space, source={"kind": "distribution", "distribution": {"cat": 1.0}}), "cat.distok")
    """
    atomic_write(path, to_bytes(token), overwrite)
    return str(path)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file at ``path`` (waiting for another holder). Writers replace the
    file, so the lock is taken again until the path still names the locked file: two read-modify-writes of
    one token file never interleave, and nothing is left behind."""
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise write_error(path, exc) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


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
        return Token(vector=arr, plain=True, path=path, title=title, tool_version="", extra=dict(meta),
                     plain_layout=layout)
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
        raise _bad(path, "format 1.x tokens have one vector and 2.x tokens have parts" if major == "1" or layout
                   else "a format 2.x token space must list its parts")
    names = [n for n, _ in layout] or [TENSOR_KEY]
    if sorted(fr.tensors) != sorted(names):
        raise _bad(path, f"tensors are {_names(fr.tensors)}, expected {', '.join(names)}")
    export = values[K_EXPORT]
    want = "F16" if export is not None and export["dtype"] == "float16" else "F32"
    rows = []
    for name in names:
        arr = fr.tensors[name]
        if fr.dtypes[name] != want:
            raise _bad(path, f"tensor {name} has dtype {fr.dtypes[name]}, expected {want}")
        if arr.ndim != 2 or arr.shape[0] != 1 or arr.shape[1] == 0:
            raise _bad(path, f"tensor {name} has shape {list(arr.shape)}, expected [1, d]")
        if layout and arr.shape[1] != dict(layout)[name]:
            raise _bad(path, f"tensor {name} has shape {list(arr.shape)}, expected [1, {dict(layout)[name]}]")
        rows.append(arr[0])
    vec = np.concatenate(rows) if len(rows) > 1 else rows[0]
    if not np.isfinite(vec).all():
        raise _bad(path, "tensor has NaN or Inf values")
    return _token_from_meta(vec, meta, values, parsed, path)


def _names(tensors: dict[str, Any]) -> str:
    return ", ".join(repr(n[:40]) for n in list(tensors)[:4]) + (" …" if len(tensors) > 4 else "")


def _plain_vector(path: str, fr: frame.Frame) -> tuple[np.ndarray, tuple[tuple[str, int], ...], str]:
    """A plain file's vector, layout and title: one tensor ([d] or [1, d], any key), or SDXL's two."""
    if set(fr.tensors) == {n for n, _ in SDXL_LAYOUT}:
        rows = []
        for name, dim in SDXL_LAYOUT:
            arr = fr.tensors[name]
            if arr.shape not in ((dim,), (1, dim)):
                raise _bad(path, f"tensor {name!r} has shape {list(arr.shape)}; distok reads one vector per "
                                 f"encoder ([{dim}] or [1, {dim}])")
            rows.append(arr.reshape(-1))
        return np.concatenate(rows), SDXL_LAYOUT, "clip_l+clip_g"
    if len(fr.tensors) != 1:
        raise _bad(path, f"{len(fr.tensors)} tensors ({_names(fr.tensors)}): a plain embedding holds one, or "
                         "SDXL's clip_l and clip_g")
    name, arr = next(iter(fr.tensors.items()))
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise _bad(path, f"tensor {name!r} has shape {list(arr.shape)}; a token is [d] or [1, d]")
    return arr, (), name


def _token_from_meta(arr: np.ndarray, meta: dict[str, str], values: dict[str, Any], parsed: TokenSpace, path: str) -> Token:
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


def space_from_json(space: dict[str, Any]) -> TokenSpace:
    """A :class:`TokenSpace` from its schema-checked JSON object, with what a schema cannot say checked:
    parts named by the part rule, distinct, their widths summing to ``dim``, the fingerprint theirs."""
    parts = tuple(SpacePart(p["name"], int(p["dim"]), p["fingerprint"], p.get("subfolder", ""))
                  for p in space.get("parts", ()))
    if not parts:
        return TokenSpace(space["encoder"], int(space["dim"]), space["fingerprint"], space.get("subfolder", ""))
    names = [p.name for p in parts]
    if len(parts) < 2 or len(set(names)) != len(names) or any(not PART_NAME.fullmatch(n) or n == TENSOR_KEY for n in names):
        raise BadInput(f"token space parts {names}: need two or more distinct names of a-z, 0-9, '_' (not {TENSOR_KEY})")
    if sum(p.dim for p in parts) != int(space["dim"]):
        raise BadInput(f"token space parts are {sum(p.dim for p in parts)} wide, not dim {space['dim']}")
    if parts_fingerprint(parts) != space["fingerprint"]:
        raise BadInput("token space fingerprint is not its parts' (file altered or corrupt)")
    return TokenSpace(space["encoder"], int(space["dim"]), space["fingerprint"], space.get("subfolder", ""), parts)


def load(path: str | os.PathLike[str]) -> Token:
    """Read and validate a token file. Raises :class:`InvalidTokenFile` with a one-line reason."""
    p = str(path)
    return from_bytes(read_regular(p, MAX_HEADER_BYTES + (1 << 24) + 9, "token file"), p)

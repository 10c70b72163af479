"""The token file format: golden bytes, determinism, schema, and each rejection reason."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from distok_cli.errors import BadInput, InvalidTokenFile
from distok_cli.files import safety, space, tokenfile
from distok_cli.files.space import TokenSpace
from distok_cli.files.tokenfile import Token

from .conftest import EXAMPLES, ROOT

GOLDEN = [
    "pig-sheep-snake.distok",
    "sampled-cauchy.distok",
    "composition.distok",
    "pig55-sheep25-snake20-447da2.safetensors",
    "sdxl-pig-sheep-snake.distok",
    "pig55-sheep25-snake20-952008.safetensors",
    "plain-textual-inversion.safetensors",
]
SPACE = TokenSpace("enc", 4, "fp16-sha256:" + "1" * 64)


def _examples():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tok(vec=(1.0, 2.0, 3.0, 4.0), **kw) -> Token:
    kw.setdefault("source", {"kind": "distribution", "distribution": {"cat": 0.5, "dog": 0.5}})
    kw.setdefault("space", SPACE)
    kw.setdefault("tool_version", "9.9.9")
    return Token(vector=np.array(vec, np.float32), **kw)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_files_are_written_byte_for_byte(name):
    mod = _examples()
    assert mod.render(mod.examples()[name]) == (EXAMPLES / name).read_bytes()


@pytest.mark.parametrize("name", GOLDEN[:6])
def test_golden_files_round_trip(name):
    data = (EXAMPLES / name).read_bytes()
    token = tokenfile.from_bytes(data)
    assert tokenfile.to_bytes(token) == data


def test_two_part_golden_file_is_an_sdxl_embedding_with_provenance():
    """Format 2.0: exactly the tensors clip_l [1, 768] and clip_g [1, 1280] (what SDXL tools read), the
    vector in memory is the two concatenated, and the content id names those 2048 float32 values."""
    from safetensors.numpy import load_file

    path = EXAMPLES / "sdxl-pig-sheep-snake.distok"
    tensors = load_file(str(path))
    assert {k: v.shape for k, v in tensors.items()} == {"clip_l": (1, 768), "clip_g": (1, 1280)}
    token = tokenfile.load(path)
    assert token.layout == (("clip_l", 768), ("clip_g", 1280)) and token.dim == 2048
    np.testing.assert_array_equal(token.vector, np.concatenate([tensors["clip_l"][0], tensors["clip_g"][0]]))
    np.testing.assert_array_equal(token.part_vectors()["clip_g"], tensors["clip_g"][0])
    assert token.id == "sha256:" + hashlib.sha256(token.vector.astype("<f4").tobytes()).hexdigest()
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    assert meta["distok.format_version"] == "2.0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/textual-inversion"
    space = json.loads(meta["distok.token_space"])
    assert [(p["name"], p["dim"], p["subfolder"]) for p in space["parts"]] == [
        ("clip_l", 768, "text_encoder"),
        ("clip_g", 1280, "text_encoder_2"),
    ]
    # the space's fingerprint is its parts': sha256 over "name:dim:fingerprint;" (spec §3)
    joined = "".join(f"{p['name']}:{p['dim']}:{p['fingerprint']};" for p in space["parts"])
    assert space["fingerprint"] == "fp16-sha256:" + hashlib.sha256(joined.encode()).hexdigest()


def _two_part(meta_space=None, tensors=None, version="2.0"):
    """A two-part token file built by hand (widths 2 and 3), with one thing changed."""
    from distok_cli.files.space import SpacePart

    space = TokenSpace.with_parts(
        "enc", (SpacePart("aa", 2, "fp16-sha256:" + "1" * 64), SpacePart("bb", 3, "fp16-sha256:" + "2" * 64))
    )
    token = tok(vec=(1, 2, 3, 4, 5), space=space)
    meta = tokenfile.metadata_for(token)
    meta["distok.format_version"] = version
    if meta_space is not None:
        meta["distok.token_space"] = tokenfile.canonical_json(meta_space(space.to_json()))
    arrays = tensors if tensors is not None else {"aa": np.array([[1, 2]], "f4"), "bb": np.array([[3, 4, 5]], "f4")}
    return tokenfile.safetensors_bytes(arrays, meta)


def test_two_part_file_round_trips_and_keeps_its_parts():
    data = _two_part()
    token = tokenfile.from_bytes(data, "t.distok")
    assert token.vector.tolist() == [1, 2, 3, 4, 5] and token.layout == (("aa", 2), ("bb", 3))
    assert {k: v.tolist() for k, v in token.part_vectors().items()} == {"aa": [1, 2], "bb": [3, 4, 5]}
    assert tokenfile.to_bytes(token) == data


@pytest.mark.parametrize(
    "data, reason",
    [
        (
            _two_part(tensors={"aa": np.array([[1, 2]], "f4"), "cc": np.array([[3, 4, 5]], "f4")}),
            "tensors are 'aa', 'cc', expected aa, bb",
        ),
        (
            _two_part(tensors={"aa": np.array([[1, 2, 3]], "f4"), "bb": np.array([[4, 5]], "f4")}),
            "tensor aa has shape [1, 3], expected [1, 2]",
        ),
        (
            _two_part(tensors={"aa": np.array([[1, 2]], "f4"), "bb": np.array([[3, 4, 5, 6]], "f4")}),
            "tensor bb has shape [1, 4], expected [1, 3]",
        ),
        (
            _two_part(tensors={"aa": np.array([[1, 2]], "f4"), "bb": np.array([[3, 4], [5, 6]], "f4")}),
            "tensor bb has shape [2, 2], expected [1, d]",
        ),
        (_two_part(version="1.0"), "format 1.x tokens have one vector and 2.x tokens have parts"),
        (
            _two_part(lambda s: {**s, "parts": [{**s["parts"][0], "name": "bb"}, s["parts"][1]]}),
            "need two or more distinct names",
        ),
        (
            _two_part(
                lambda s: {**s, "parts": [{**s["parts"][0], "fingerprint": "fp16-sha256:" + "3" * 64}, s["parts"][1]]}
            ),
            "token space fingerprint is not its parts'",
        ),
        (_two_part(lambda s: {**s, "parts": [s["parts"][0]]}), "parts needs at least 2 item(s)"),
        (_two_part(lambda s: {**s, "parts": [{**s["parts"][0], "name": "Emb"}, s["parts"][1]]}), "parts[0].name"),
    ],
)
def test_two_part_reader_rejects_with_one_line_reason(data, reason):
    with pytest.raises(InvalidTokenFile) as info:
        tokenfile.from_bytes(data, "f.distok")
    msg = str(info.value)
    assert msg.startswith("f.distok: ") and reason in msg and "\n" not in msg


def test_golden_header_is_exactly_as_specified():
    data = (EXAMPLES / "pig-sheep-snake.distok").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0 and len(data) == 8 + n + 768 * 4
    header = data[8 : 8 + n].rstrip(b" ")
    assert header.startswith(b'{"__metadata__":{"distok.content_id":"sha256:')
    assert header.endswith(b'"emb_params":{"data_offsets":[0,3072],"dtype":"F32","shape":[1,768]}}')
    meta = json.loads(header)["__metadata__"]
    assert meta["distok.source"] == '{"distribution":{"pig":0.55,"sheep":0.25,"snake":0.2},"kind":"distribution"}'
    assert meta["distok.format"] == "distok.token" and meta["distok.format_version"] == "1.0"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/textual-inversion"


@pytest.mark.parametrize("name", [*GOLDEN[:3], "sdxl-pig-sheep-snake.distok"])
def test_golden_metadata_matches_the_json_schema(name):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "formats" / "distok-token-v2.schema.json").read_text())
    from safetensors import safe_open

    with safe_open(str(EXAMPLES / name), framework="np") as f:
        meta = f.metadata()
    jsonschema.validate(meta, schema)
    for key, ref in [
        ("distok.token_space", "token_space"),
        ("distok.source", "source"),
        ("distok.estimate", "estimate"),
        ("distok.model", "model"),
    ]:
        if key in meta:
            jsonschema.validate(json.loads(meta[key]), {"$defs": schema["$defs"], "$ref": f"#/$defs/{ref}"})


def test_safetensors_reads_golden_file_unchanged():
    from safetensors.numpy import load_file

    arrays = load_file(str(EXAMPLES / "pig-sheep-snake.distok"))
    assert list(arrays) == ["emb_params"] and arrays["emb_params"].shape == (1, 768)
    assert arrays["emb_params"].dtype == np.float32
    np.testing.assert_array_equal(arrays["emb_params"][0], tokenfile.load(EXAMPLES / "pig-sheep-snake.distok").vector)


def test_plain_textual_inversion_is_read_without_provenance():
    t = tokenfile.load(EXAMPLES / "plain-textual-inversion.safetensors")
    assert t.plain and t.space is None and t.source is None and t.title == "<cat-toy>"
    assert t.vector.shape == (768,)


def test_same_inputs_same_bytes_whatever_the_dict_order():
    a = tok(source={"kind": "distribution", "distribution": {"cat": 0.25, "dog": 0.75}}, extra={"x.a": "1", "x.b": "2"})
    b = tok(source={"distribution": {"dog": 0.75, "cat": 0.25}, "kind": "distribution"}, extra={"x.b": "2", "x.a": "1"})
    assert tokenfile.to_bytes(a) == tokenfile.to_bytes(b)


def test_extra_keys_survive_a_rewrite(tmp_path):
    p = tmp_path / "t.distok"
    tokenfile.save(tok(extra={"other.tool": "kept"}), p)
    t = tokenfile.load(p)
    assert t.extra == {"other.tool": "kept"}
    assert tokenfile.to_bytes(t) == p.read_bytes()


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "t.distok"
    p.write_bytes(b"old")
    with pytest.raises(BadInput):
        tokenfile.save(tok(vec=(1.0, float("nan"), 0.0, 0.0)), p)
    assert p.read_bytes() == b"old"
    tokenfile.save(tok(), p)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["t.distok"]


def _file(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def _valid_meta(vec: np.ndarray, **over) -> dict:
    meta = tokenfile.metadata_for(tok(vec=vec))
    meta.update(over)
    return meta


V = np.array([1, 2, 3, 4], "<f4")
ENTRY = {"dtype": "F32", "shape": [1, 4], "data_offsets": [0, 16]}


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "not a safetensors file (shorter than its 8-byte header length)"),
        (b"\x80\x02}q\x00", "looks like a PyTorch pickle"),
        (b"PK\x03\x04" + b"\0" * 20, "looks like a PyTorch pickle"),
        (struct.pack("<Q", 10) + b"{}", "truncated (header needs 10 bytes, file has 2)"),
        (struct.pack("<Q", 2) + b"[]", "not a safetensors file (header is not a JSON object)"),
        (struct.pack("<Q", 3) + b"{x}", "malformed safetensors header (invalid JSON)"),
        (
            struct.pack("<Q", (1 << 20) + 1) + b" " * ((1 << 20) + 1),
            "metadata too large (1048577 bytes; limit 1048576)",
        ),
        (_file({"__metadata__": _valid_meta(V)}, b""), "no tensor (a token file holds one, or one per part)"),
        (
            _file(
                {"__metadata__": _valid_meta(V), "emb_params": ENTRY, "b": {**ENTRY, "data_offsets": [16, 32]}},
                V.tobytes() * 2,
            ),
            "tensors are 'b', 'emb_params', expected emb_params",
        ),
        (_file({"__metadata__": _valid_meta(V), "emb_params": ENTRY}, V.tobytes()[:12]), "truncated or padded"),
        (_file({"__metadata__": _valid_meta(V), "emb_params": ENTRY}, V.tobytes() + b"xx"), "truncated or padded"),
        (_file({"__metadata__": _valid_meta(V), "emb_params": {**ENTRY, "dtype": "F64"}}, V.tobytes()), "dtype F64"),
        (
            _file(
                {"__metadata__": _valid_meta(V), "emb_params": {**ENTRY, "dtype": "F16", "data_offsets": [0, 8]}},
                V.astype("<f2").tobytes(),
            ),
            "dtype F16, expected F32",
        ),
        (
            _file({"__metadata__": _valid_meta(V), "emb_params": {**ENTRY, "shape": [4]}}, V.tobytes()),
            "expected [1, d]",
        ),
        (
            _file({"__metadata__": _valid_meta(V), "emb_params": {**ENTRY, "shape": [2, 2]}}, V.tobytes()),
            "expected [1, d]",
        ),
        (_file({"__metadata__": _valid_meta(V), "x": ENTRY}, V.tobytes()), "tensors are 'x', expected emb_params"),
        (
            _file({"__metadata__": _valid_meta(V), "emb_params": ENTRY}, np.array([1, np.nan, 3, 4], "<f4").tobytes()),
            "NaN or Inf",
        ),
        (
            _file({"__metadata__": _valid_meta(V), "emb_params": ENTRY}, np.array([1, np.inf, 3, 4], "<f4").tobytes()),
            "NaN or Inf",
        ),
        (
            _file(
                {"__metadata__": _valid_meta(V, **{"distok.format_version": "3.0"}), "emb_params": ENTRY}, V.tobytes()
            ),
            "unsupported format version '3.0' (this distok reads 1.x and 2.x)",
        ),
        (
            _file(
                {"__metadata__": _valid_meta(V, **{"distok.format_version": "2.0"}), "emb_params": ENTRY}, V.tobytes()
            ),
            "a format 2.x token space must list its parts",
        ),
        (
            _file({"__metadata__": _valid_meta(V, **{"distok.format": "other"}), "emb_params": ENTRY}, V.tobytes()),
            "unknown format 'other'",
        ),
        (
            _file({"__metadata__": _valid_meta(V, **{"distok.source": "{oops"}), "emb_params": ENTRY}, V.tobytes()),
            "metadata distok.source is not valid JSON",
        ),
        (
            _file(
                {
                    "__metadata__": _valid_meta(
                        V, **{"distok.source": '{"kind":"distribution","distribution":{"a":0.5,"b":0.6}}'}
                    ),
                    "emb_params": ENTRY,
                },
                V.tobytes(),
            ),
            "source distribution sums to 1.1, not 1 (tolerance 1e-06)",
        ),
        (
            _file(
                {
                    "__metadata__": _valid_meta(
                        V, **{"distok.source": '{"kind":"distribution","distribution":{"a":1.5,"b":-0.5}}'}
                    ),
                    "emb_params": ENTRY,
                },
                V.tobytes(),
            ),
            "distribution.b must be at least 0, not -0.5",
        ),
        (
            _file(
                {"__metadata__": _valid_meta(V, **{"distok.content_id": "sha256:" + "0" * 64}), "emb_params": ENTRY},
                V.tobytes(),
            ),
            "content id does not match the tensor",
        ),
        (
            _file({"__metadata__": {"distok.format": 1}, "emb_params": ENTRY}, V.tobytes()),
            "__metadata__ must map strings",
        ),
    ],
)
def test_reader_rejects_with_one_line_reason(data, reason):
    with pytest.raises(InvalidTokenFile) as info:
        tokenfile.from_bytes(data, "f.distok")
    msg = str(info.value)
    assert msg.startswith("f.distok: ") and reason in msg and "\n" not in msg


def test_distribution_tolerance_is_one_in_a_million():
    ok = {"kind": "distribution", "distribution": {"a": 0.5, "b": 0.5 + 9e-7}}
    tokenfile.from_bytes(tokenfile.to_bytes(tok(source=ok)))
    with pytest.raises(BadInput, match="sums to 1.0000011"):
        tokenfile.to_bytes(tok(source={"kind": "distribution", "distribution": {"a": 0.5, "b": 0.5 + 1.1e-6}}))


def test_plain_files_of_f16_and_bf16_are_converted():
    h16 = {"t": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}
    assert tokenfile.from_bytes(_file(h16, V.astype("<f2").tobytes())).vector.tolist() == [1, 2, 3, 4]
    bf = (V.view("<u4") >> 16).astype("<u2").tobytes()
    hbf = {"t": {"dtype": "BF16", "shape": [1, 4], "data_offsets": [0, 8]}}
    assert tokenfile.from_bytes(_file(hbf, bf)).vector.tolist() == [1, 2, 3, 4]


def test_space_fingerprint_ignores_float32_vs_float16_loading():
    m = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    assert space.space_fingerprint(m) == space.space_fingerprint(m.astype(np.float16))
    assert space.space_fingerprint(m) != space.space_fingerprint(m.T.copy())


def test_content_id_is_sha256_of_the_tensor_bytes():
    import hashlib

    assert tokenfile.content_id(V) == "sha256:" + hashlib.sha256(V.tobytes()).hexdigest()


def test_missing_and_directory_paths(tmp_path: Path):
    with pytest.raises(InvalidTokenFile, match="no such file"):
        tokenfile.load(tmp_path / "nope.distok")
    with pytest.raises(InvalidTokenFile, match="is a directory"):
        tokenfile.load(tmp_path)


@pytest.mark.parametrize("low_bytes", [b"\x80", b"PK"])
def test_valid_files_whose_header_length_looks_like_a_pickle_magic_still_load(low_bytes):
    """Regression: a header length of 0x...80 or 0x4B50 once made the reader call a valid file a pickle."""
    want = int.from_bytes(low_bytes, "little")
    mask = 0xFF if len(low_bytes) == 1 else 0xFFFF
    for pad in range(0, 40000):
        data = tokenfile.to_bytes(tok(extra={"x.pad": "a" * pad}))
        if data[: len(low_bytes)] == low_bytes:
            break
    else:
        pytest.fail("no padding produced the byte pattern")
    assert int.from_bytes(data[:8], "little") & mask == want
    assert tokenfile.from_bytes(data).extra["x.pad"] == "a" * pad


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_mode_open_would_give(tmp_path, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        safety._UMASK = None  # read the umask afresh, as a new process would
        p = tmp_path / "t.distok"
        safety.atomic_write(p, b"x", overwrite=False)
        with open(tmp_path / "plain", "wb") as fh:
            fh.write(b"x")
        assert stat.S_IMODE(p.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666 & ~umask
    finally:
        os.umask(old)
        safety._UMASK = None


def test_pipes_and_devices_are_refused_before_any_read(tmp_path):
    """A FIFO named like a token, or `-m /dev/zero`, would block or grow without bound: refused at once."""
    import os

    from .conftest import assert_one_line_error, run_cli

    fifo = tmp_path / "t.distok"
    os.mkfifo(fifo)
    assert_one_line_error(
        run_cli(["inspect", str(fifo)]), 2, f"{fifo}: not a regular file (a pipe or a device is not a token file)"
    )
    assert_one_line_error(
        run_cli(["encode", "cat:1", "-m", str(fifo)]),
        2,
        "not a regular file (a pipe or a device is not a distok checkpoint)",
    )
    assert_one_line_error(run_cli(["encode", "cat:1", "-m", "/dev/zero"]), 2, "/dev/zero: not a regular file")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_estimate_write_keeps_the_token_files_mode(tmp_path, umask, kandinsky):
    """`estimate --write` replaces a token file: it keeps the file's own mode (0o640 here), whatever the umask;
    a file distok creates meanwhile gets 0o666 & ~umask."""
    import os
    import stat

    from .conftest import make_token, run_cli

    p = tmp_path / "t.distok"
    tokenfile.save(
        make_token(kandinsky.text.space, np.ones(768) * 0.01, model={"hash": "sha256:" + "0" * 64, "recipe": "tiny"}), p
    )
    os.chmod(p, 0o640)
    old = os.umask(umask)
    try:
        safety._UMASK = None
        r = run_cli(["estimate", str(p), "--write", "--estimator", "text", "-r", "tiny", "-q"])
        assert r.code == 0, r.err
        assert tokenfile.load(p).estimate is not None
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
        fresh = tmp_path / "fresh.distok"
        tokenfile.save(tokenfile.load(p), fresh)
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    finally:
        os.umask(old)
        safety._UMASK = None


def test_no_overwrite_still_works_where_hard_links_do_not(tmp_path, monkeypatch):
    """On exFAT or a share without hard links, the name is claimed with O_EXCL: a new name is written
    whole, an existing one is refused and kept."""
    import errno
    import os

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    p = tmp_path / "t.distok"
    safety.atomic_write(p, b"first", overwrite=False)
    assert p.read_bytes() == b"first"
    with pytest.raises(BadInput, match="exists"):
        safety.atomic_write(p, b"second", overwrite=False)
    assert p.read_bytes() == b"first" and sorted(x.name for x in tmp_path.iterdir()) == ["t.distok"]

"""One strict framing layer for every input: the schemas the reader uses are the spec's, the reader and
the JSON Schema give the same verdict on the same probes, and each input that once exited 1 (a Python
error) now exits 2 with one line."""

from __future__ import annotations

import copy
import json
import struct

import jsonschema
import numpy as np
import pytest

from distok_cli.errors import BadInput
from distok_cli.files import checkpoint, schema, tokenfile

from .conftest import EXAMPLES, ROOT, assert_one_line_error, run_cli

SCHEMAS = ["distok-token-v1", "distok-token-v2", "distok-checkpoint-v1", "distok-png-record-v1"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_reader_uses_the_normative_schemas(name):
    shipped = ROOT / "distok_cli" / "files" / "schemas" / f"{name}.schema.json"
    assert shipped.read_bytes() == (ROOT / "formats" / f"{name}.schema.json").read_bytes()
    jsonschema.Draft202012Validator.check_schema(json.loads(shipped.read_text()))


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


# ------------------------------------------------------------------------------ schema ⇔ reader

TOKEN_DEFS = {
    "distok.token_space": "token_space",
    "distok.source": "source",
    "distok.estimate": "estimate",
    "distok.model": "model",
}
BASE = {
    "comp": "composition.distok",
    "latent": "sampled-cauchy.distok",
    "dist": "pig-sheep-snake.distok",
}
EST = {
    "estimator": "blip-itm",
    "distribution": {"cat": 0.25, "dog": 0.75},
    "kl": 0.5,
    "js": 0.1,
    "prompts": ["a <>"],
    "seeds": [0],
    "temperature": 1.0,
}
MODEL = {"hash": "sha256:" + "a" * 64, "recipe": "tiny", "step": 3}

# (file, metadata key, path into the decoded value or None for the whole value, new value); DELETE removes it.
DELETE = object()
PROBES = [
    ("latent", "distok.source", ["z", 0], True),
    ("latent", "distok.source", ["z", 0], "1"),
    ("latent", "distok.source", ["z"], []),
    ("latent", "distok.source", ["z", 0], 1e300),
    ("latent", "distok.source", ["prior"], "uniform"),
    ("latent", "distok.source", ["scale"], 0),
    ("latent", "distok.source", ["scale"], 2.5),
    ("latent", "distok.source", ["seed"], 1.5),
    ("latent", "distok.source", ["seed"], 2.0),
    ("latent", "distok.source", ["seed"], "0"),
    ("latent", "distok.source", ["index"], -1),
    ("latent", "distok.source", ["prior"], DELETE),
    ("comp", "distok.source", ["parents", 0, "weight"], "x"),
    ("comp", "distok.source", ["parents", 0, "weight"], "heavy"),
    ("comp", "distok.source", ["parents", 0, "weight"], -2),
    ("comp", "distok.source", ["parents", 0, "weight"], None),
    ("comp", "distok.source", ["parents", 0, "id"], "sha256:xyz"),
    ("comp", "distok.source", ["parents", 0, "id"], DELETE),
    ("comp", "distok.source", ["parents", 0, "title"], 7),
    ("comp", "distok.source", ["parents"], []),
    ("comp", "distok.source", ["parents", 0], "parent"),
    ("dist", "distok.source", ["kind"], "dream"),
    ("dist", "distok.source", ["kind"], DELETE),
    ("dist", "distok.source", ["distribution", "pig"], "0.55"),
    ("dist", "distok.source", ["distribution", "pig"], True),
    ("dist", "distok.source", None, ["kind"]),
    ("dist", "distok.token_space", ["dim"], "768"),
    ("dist", "distok.token_space", ["dim"], 768.0),
    ("dist", "distok.token_space", ["dim"], True),
    ("dist", "distok.token_space", ["encoder"], ""),
    ("dist", "distok.token_space", ["fingerprint"], "md5:00"),
    ("dist", "distok.token_space", ["subfolder"], 3),
    ("dist", "distok.token_space", ["colour"], "red"),
    ("dist", "distok.estimate", None, EST),
    ("dist", "distok.estimate", ["kl"], "big"),
    ("dist", "distok.estimate", ["kl"], None),
    ("dist", "distok.estimate", ["kl"], -1),
    ("dist", "distok.estimate", ["js"], [0.1]),
    ("dist", "distok.estimate", ["estimator"], ""),
    ("dist", "distok.estimate", ["estimator"], DELETE),
    ("dist", "distok.estimate", ["prompts"], [1]),
    ("dist", "distok.estimate", ["seeds"], ["a"]),
    ("dist", "distok.estimate", ["temperature"], 0),
    ("dist", "distok.estimate", ["distribution"], {}),
    ("dist", "distok.estimate", ["distribution"], {"": 1.0}),
    ("dist", "distok.model", None, MODEL),
    ("dist", "distok.model", ["hash"], DELETE),
    ("dist", "distok.model", ["hash"], 5),
    ("dist", "distok.model", ["step"], "3"),
    ("dist", "distok.model", ["recipe"], ["tiny"]),
    ("dist", "distok.model", None, "model"),
]


def _set(obj, path, value):
    if path is None:
        return value
    obj = copy.deepcopy(obj)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


def _probe(base: str, key: str, path, value) -> tuple[bytes, dict]:
    header, body = _split((EXAMPLES / BASE[base]).read_bytes())
    meta = header["__metadata__"]
    current = json.loads(meta[key]) if key in meta else (EST if key == "distok.estimate" else MODEL)
    meta[key] = json.dumps(_set(current, path, value))
    return _join(header, body), meta


def _schema_verdict(meta: dict, name: str, defs: dict) -> bool:
    root = json.loads((ROOT / "formats" / f"{name}.schema.json").read_text())
    try:
        jsonschema.validate(meta, root)
        for key, definition in defs.items():
            if key in meta:
                jsonschema.validate(json.loads(meta[key]), {**root["$defs"][definition], "$defs": root["$defs"]})
    except jsonschema.ValidationError:
        return False
    return True


@pytest.mark.parametrize("probe", PROBES, ids=[f"{b}-{k[7:]}-{p}-{v!r}"[:60] for b, k, p, v in PROBES])
def test_schema_and_token_reader_agree(probe):
    data, meta = _probe(*probe)
    try:
        tokenfile.from_bytes(data, "p.distok")
        reader = True
    except BadInput:
        reader = False
    assert reader == _schema_verdict(meta, "distok-token-v2", TOKEN_DEFS)


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_the_probes_are_not_all_one_verdict():
    verdicts = [_schema_verdict(_probe(*p)[1], "distok-token-v2", TOKEN_DEFS) for p in PROBES]
    assert 5 <= sum(verdicts) <= len(PROBES) - 30


def _tiny_checkpoint(classes=("cat", "dog", "pig"), d=8, h=4, w=2) -> checkpoint.Checkpoint:
    rng = np.random.default_rng(0)
    shapes = {
        "E_dis.0.weight": (h, d),
        "E_dis.0.bias": (h,),
        "E_dis.2.weight": (w, h),
        "E_dis.2.bias": (w,),
        "D_tok.0.weight": (h, w),
        "D_tok.0.bias": (h,),
        "D_tok.2.weight": (d, h),
        "D_tok.2.bias": (d,),
        "class_embeddings": (len(classes), d),
    }
    tensors = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    space = {"dim": d, "encoder": "test", "fingerprint": "fp16-sha256:" + "2" * 64}
    config = {
        "classes": list(classes),
        "dim": d,
        "hidden": h,
        "latent_dim": w,
        "token_space": space,
        "activation": "gelu_tanh",
        "fusion_input": "sum",
        "recipe": "test",
        "step": 1,
    }
    return checkpoint.Checkpoint(tensors, config)


CONFIG_PROBES = [
    (["classes", 0], 1),
    (["classes", 0], ""),
    (["classes", 0], "a/b"),
    (["dim"], "8"),
    (["dim"], 8.0),
    (["hidden"], 0),
    (["latent_dim"], None),
    (["token_space"], {}),
    (["token_space", "dim"], "8"),
    (["token_space", "extra"], 1),
    (["activation"], "relu"),
    (["fusion_input"], "max"),
    (["step"], -1),
    (["step"], 2),
    (["recipe"], 3),
    (["classes"], "cat,dog,pig"),
    (["note"], "free text"),
]


@pytest.mark.parametrize("path,value", CONFIG_PROBES, ids=[f"{p}-{v!r}" for p, v in CONFIG_PROBES])
def test_schema_and_checkpoint_reader_agree(tmp_path, path, value):
    ck = _tiny_checkpoint()
    header, body = _split(ck.to_bytes())
    config = _set(json.loads(header["__metadata__"]["distok.config"]), path, value)
    header["__metadata__"]["distok.config"] = json.dumps(config)
    (tmp_path / "m.safetensors").write_bytes(_join(header, body))
    try:
        checkpoint.load(tmp_path / "m.safetensors")
        reader = True
    except BadInput:
        reader = False
    assert reader == _schema_verdict(header["__metadata__"], "distok-checkpoint-v1", {"distok.config": "config"})


# ---------------------------------------------------------------------- inputs that once exited 1


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.safetensors"
    _tiny_checkpoint().save(path)
    return path


def _token_with(tmp_path, name: str, base: str, edit) -> str:
    header, body = _split((EXAMPLES / base).read_bytes())
    edit(header)
    path = tmp_path / name
    path.write_bytes(_join(header, body))
    return str(path)


def _meta_edit(key, path, value):
    def edit(header):
        meta = header["__metadata__"]
        meta[key] = json.dumps(_set(json.loads(meta.get(key, json.dumps(EST))), path, value))

    return edit


def test_token_files_that_crashed_inspect_and_diff_exit_2(tmp_path):
    def dtype_list(h):
        h["emb_params"]["dtype"] = ["F32"]

    cases = {
        _token_with(tmp_path, "dtype.distok", "composition.distok", dtype_list): "dtype ['F32'], expected",
        _token_with(
            tmp_path,
            "heavy.distok",
            "composition.distok",
            _meta_edit("distok.source", ["parents", 0, "weight"], "heavy"),
        ): 'parents[0].weight must be number, not "heavy"',
        _token_with(
            tmp_path, "kl.distok", "pig-sheep-snake.distok", _meta_edit("distok.estimate", ["kl"], "big")
        ): 'kl must be number or null, not "big"',
    }
    for path, reason in cases.items():
        assert_one_line_error(run_cli(["inspect", path]), 2, reason)
    deep = tmp_path / "deep.distok"
    raw = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert_one_line_error(
        run_cli(["inspect", str(deep)]), 2, "malformed safetensors header (invalid JSON): nested too deeply"
    )
    # A 400-digit integer in z: once an OverflowError in diff.
    header, body = _split((EXAMPLES / "sampled-cauchy.distok").read_bytes())
    src = header["__metadata__"]["distok.source"]
    header["__metadata__"]["distok.source"] = src.replace('"z":[', '"z":[' + "9" * 400 + ",", 1)
    huge = tmp_path / "huge.distok"
    huge.write_bytes(_join(header, body))
    r = run_cli(["diff", str(EXAMPLES / "sampled-cauchy.distok"), str(huge)])
    assert_one_line_error(r, 2, "an integer with more than 308 digits")


def _checkpoint_bytes(edit) -> bytes:
    header, body = _split(_tiny_checkpoint().to_bytes())
    edit(header)
    return _join(header, body)


def test_checkpoints_that_crashed_encode_exit_2(tmp_path):
    def no_offsets(h):
        del h["E_dis.0.bias"]["data_offsets"]

    def string_entry(h):
        h["E_dis.0.bias"] = "x"

    def empty_space(h):
        cfg = json.loads(h["__metadata__"]["distok.config"])
        h["__metadata__"]["distok.config"] = json.dumps({**cfg, "token_space": {}})

    cases = [
        (_checkpoint_bytes(no_offsets), "tensor 'E_dis.0.bias' has a malformed header entry"),
        (_checkpoint_bytes(string_entry), "tensor 'E_dis.0.bias' has a malformed header entry"),
        (_tiny_checkpoint().to_bytes() + b"garbage!", "truncated or padded"),
        (_checkpoint_bytes(empty_space), "checkpoint config: token_space lacks 'encoder'"),
    ]
    for i, (data, reason) in enumerate(cases):
        path = tmp_path / f"{i}.safetensors"
        path.write_bytes(data)
        assert_one_line_error(
            run_cli(["encode", "cat:1", "-m", str(path), "-o", str(tmp_path / "t.distok")]), 2, reason
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.safetensors" for i in range(len(cases))]


@pytest.mark.parametrize(
    "text,reason",
    [
        ("name: x\ntrain:\n  steps: 123456789012345678901234567890\n", "train.steps"),
        ("name: x\nseed: 99999999999999999999999\n", "seed"),
        ("name: x\ntrain:\n  eps1: .inf\n", "train.eps1"),
        ("name: x\ntrain:\n  alpha: .nan\n", "train.alpha"),
    ],
)
def test_recipes_with_numbers_out_of_range_exit_2_before_any_model_loads(tmp_path, text, reason):
    (tmp_path / "r.yaml").write_text(text)
    r = run_cli(["train", "-r", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "run")])
    assert_one_line_error(r, 2, reason)
    assert not (tmp_path / "run").exists()


def test_a_recipe_that_is_not_utf8_exits_2(tmp_path):
    (tmp_path / "r.yaml").write_bytes(b"name: x\n\xff: 1\n")
    assert_one_line_error(run_cli(["train", "-r", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "run")]), 2, "r.yaml")


@pytest.mark.parametrize(
    "args,reason",
    [
        (["encode", "cat:1", "-o", "afile/x.distok"], "-o afile/x.distok: afile is a file, not a folder"),
        (["encode", "cat:1", "-o", "x" * 300 + ".distok"], "is longer than 255 bytes"),
        (["encode", "cat:1", "-o", "nul\x00.distok"], "-o: a path cannot contain a NUL character"),
        (["encode", "cat:1", "-o", "."], "-o .: is a folder (give a file name)"),
        (["sample", "--n", "2", "-o", "afile"], "-o afile: exists and is not a folder"),
        (["sample", "--n", "2", "-o", "afile/sub"], "-o afile/sub: afile is a file, not a folder"),
        (["sample", "--n", "2", "-o", "y" * 256], "is longer than 255 bytes"),
        (["train", "-o", "afile", "--steps", "1"], "-o afile: exists and is not a folder"),
        (["render", str(EXAMPLES / "composition.distok"), "-o", "afile/r"], "afile is a file, not a folder"),
        (["eval", "MODEL", "-o", "afile"], "-o afile: exists and is not a folder"),
        (["demo", "-o", "afile"], "-o afile: exists and is not a folder"),
    ],
)
def test_output_paths_that_cannot_be_written_exit_2_before_any_work(tmp_path, monkeypatch, model, args, reason):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    args = [str(model) if a == "MODEL" else a for a in args]
    if args[0] in ("encode", "sample"):
        args += ["-m", str(model)]
    assert_one_line_error(run_cli(args), 2, reason)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "model.safetensors"]


def test_a_nul_in_a_listed_path_exits_2(tmp_path):
    r = run_cli(["inspect", "-"], stdin="bad\x00name.distok\n")
    assert_one_line_error(r, 2, "cannot read")


def test_strict_json_refuses_what_json_would_let_through():
    for text, reason in [
        ('{"a":1,"a":2}', "duplicate key 'a'"),
        ('{"a":NaN}', "NaN is not a JSON number"),
        ('{"a":1e400}', "1e400 is too large"),
        ("[" * 100_000, "nested too deeply"),
    ]:
        with pytest.raises(ValueError, match=reason):
            schema.loads(text)
    assert schema.loads('{"a":[1,2.5,"x",null,true]}') == {"a": [1, 2.5, "x", None, True]}

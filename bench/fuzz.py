"""Hostile-input fuzzing of every distok command (not a timed test; its report is committed).

Usage: python bench/fuzz.py [--limit N] [--every K] [--timeout S] [--out bench/results/fuzz]

Builds thousands of hostile cases (corrupt token files, checkpoints, PNG records, distribution specs and
recipes; bad flags; output paths through files, with NULs or 300-character names; FIFOs, devices and
folders where files belong) across train, encode, sample, render, estimate, inspect, diff, eval, demo and
model, and runs each one in-process, exactly as the console script does, in a sandbox. Every case must:

- exit 2 with exactly one line on stderr, ``distok: error: ...``, and no traceback;
- print nothing on stdout;
- leave the sandbox exactly as it was: no file left, nothing written anywhere (inputs, the working folder,
  HOME and the config folder are all inside the sandbox and compared before and after);
- finish within ``--timeout`` seconds (SIGALRM), so no read blocks and no loop runs away.

The report lists the cases by family and command, and every failure with its arguments and stderr.
``tests/test_fuzz.py`` runs a stratified slice of the same cases on every CI run.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import shutil
import signal
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "formats" / "examples"
FIFO, FOLDER = b"\0FIFO", b"\0FOLDER"  # special inputs: made with mkfifo / mkdir instead of written


@dataclass
class Case:
    family: str
    args: list[str]
    files: dict[str, bytes] = field(default_factory=dict)  # names under IN/ → content (or FIFO/FOLDER)
    stdin: str = ""

    @property
    def command(self) -> str:
        return self.args[0]


# --------------------------------------------------------------------------------------------- inputs


def split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def tiny_checkpoint_bytes() -> bytes:
    """A small valid checkpoint (numpy only): 3 classes, d = 8."""
    from distok_cli.files.checkpoint import Checkpoint

    rng = np.random.default_rng(0)
    d, h, w, classes = 8, 4, 2, ["cat", "dog", "pig"]
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
    config = {
        "classes": classes,
        "dim": d,
        "hidden": h,
        "latent_dim": w,
        "activation": "gelu_tanh",
        "token_space": {"dim": d, "encoder": "fuzz", "fingerprint": "fp16-sha256:" + "3" * 64},
        "fusion_input": "sum",
        "recipe": "fuzz",
        "step": 1,
    }
    return Checkpoint(tensors, config).to_bytes()


def bad_token_files() -> list[tuple[str, bytes]]:
    """Token files every reader must refuse: truncations, junk metadata, shapes, values, framing."""
    good = (EXAMPLES / "sampled-cauchy.distok").read_bytes()
    header, body = split(good)
    (n,) = struct.unpack("<Q", good[:8])
    meta = header["__metadata__"]
    out: list[tuple[str, bytes]] = []
    for cut in list(range(0, 8 + n, 2)) + list(range(8 + n, len(good), 211)):
        out.append((f"truncated at {cut}", good[:cut]))
    out.append(("trailing bytes", good + b"\0"))
    vec = np.frombuffer(body, "<f4").copy()
    for bad in (np.nan, np.inf, -np.inf):
        for pos in (0, 100, 767):
            v = vec.copy()
            v[pos] = bad
            out.append((f"{bad} at {pos}", join(header, v.tobytes())))
    for shape in (
        [768],
        [2, 384],
        [768, 1],
        [1, 767],
        [1, 769],
        [0, 768],
        [1, 0],
        [],
        [1, 768, 1],
        [-1, 768],
        ["1", 768],
        [True, 768],
        [1.0, 768],
        None,
        "1,768",
        [1] * 9,
    ):
        out.append((f"shape {shape}", join({**header, "emb_params": {**header["emb_params"], "shape": shape}}, body)))
    for dtype in (["F32"], "F64", "I32", "f32", None, 32, {"F32": 1}, "", "BOOL"):
        out.append((f"dtype {dtype}", join({**header, "emb_params": {**header["emb_params"], "dtype": dtype}}, body)))
    for offsets in ([0], [0, 3072, 1], [1, 3073], [-4, 3068], [0, 3076], ["0", 3072], [0.0, 3072.0], None, [3072, 0]):
        out.append(
            (
                f"offsets {offsets}",
                join({**header, "emb_params": {**header["emb_params"], "data_offsets": offsets}}, body),
            )
        )
    entry = header["emb_params"]
    for name, h in [
        ("no tensor", {"__metadata__": meta}),
        ("two tensors", {**header, "b": entry}),
        ("tensor not an object", {**header, "emb_params": [1, 768]}),
        ("extra entry key", {**header, "emb_params": {**entry, "x": 1}}),
        ("missing data_offsets", {**header, "emb_params": {k: v for k, v in entry.items() if k != "data_offsets"}}),
        ("renamed tensor", {"__metadata__": meta, "emb": entry}),
        ("metadata not strings", {**header, "__metadata__": {**meta, "distok.format_version": 1.0}}),
        ("metadata a list", {**header, "__metadata__": list(meta)}),
    ]:
        out.append((name, join(h, body)))
    junk_values = [
        "",
        "{",
        "[]",
        "null",
        "1",
        "true",
        '"s"',
        "NaN",
        "Infinity",
        "1e400",
        "9" * 400,
        '{"kind":"nope"}',
        '{"a":1,"a":2}',
        "[" * 5000 + "]" * 5000,
        '{"distribution":{"a":-1}}',
        '{"kind":"distribution","distribution":{}}',
        '{"kind":"distribution","distribution":{"a":0.3}}',
        '{"kind":"latent","prior":"cauchy","z":[true]}',
        '{"kind":"latent","prior":"cauchy","z":["1"]}',
        '{"kind":"composition","parents":[{"id":"sha256:' + "0" * 64 + '","weight":"x"}]}',
        '{"estimator":"x","distribution":{"a":1},"kl":"big"}',
        '{"hash":5}',
        '{"encoder":"e","dim":"768","fingerprint":"fp16-sha256:' + "0" * 64 + '"}',
        '{"encoder":"e","dim":768,"fingerprint":"x"}',
        '{"encoder":"e","dim":767,"fingerprint":"fp16-sha256:' + "0" * 64 + '"}',
    ]
    for key in ("distok.token_space", "distok.source", "distok.estimate", "distok.model"):
        for junk in junk_values:
            out.append((f"{key} = {junk[:30]}", join({**header, "__metadata__": {**meta, key: junk}}, body)))
    for key in ("distok.content_id", "distok.token_space", "distok.source", "distok.format", "distok.format_version"):
        out.append(
            (f"without {key}", join({**header, "__metadata__": {k: v for k, v in meta.items() if k != key}}, body))
        )
    for key, value in [
        ("distok.format", "distok.tokens"),
        ("distok.format_version", "2.0"),
        ("distok.format_version", ""),
        ("distok.content_id", "sha256:" + "0" * 64),
        ("distok.content_id", "md5:1"),
    ]:
        out.append((f"{key} = {value}", join({**header, "__metadata__": {**meta, key: value}}, body)))
    out.append(("oversized metadata", join({**header, "__metadata__": {**meta, "x.pad": "a" * (1 << 20)}}, body)))
    out.append(("header length past the end", struct.pack("<Q", 1 << 40) + good[8:]))
    out.append(("header length 2^64-1", b"\xff" * 8 + good[8:]))
    out.append(("pickle (zip)", b"PK\x03\x04" + b"\0" * 64))
    out.append(("pickle (protocol 2)", b"\x80\x02}q\x00." + b"\0" * 16))
    out.append(("header is a list", struct.pack("<Q", 2) + b"[]" + body))
    out.append(("header not UTF-8", struct.pack("<Q", 4) + b'{"\xff"' + body))
    out.append(("empty file", b""))
    return out


def bad_checkpoints(good: bytes) -> list[tuple[str, bytes]]:
    header, body = split(good)
    (n,) = struct.unpack("<Q", good[:8])
    meta = header["__metadata__"]
    config = json.loads(meta["distok.config"])
    out: list[tuple[str, bytes]] = [(f"truncated at {cut}", good[:cut]) for cut in range(0, 8 + n, 3)]
    out += [(f"truncated data at {cut}", good[:cut]) for cut in range(8 + n, len(good), 17)]
    out.append(("trailing garbage", good + b"garbage!"))
    first = "D_tok.0.bias"
    for name, h in [
        ("no data_offsets", {**header, first: {k: v for k, v in header[first].items() if k != "data_offsets"}}),
        ("entry is a string", {**header, first: "x"}),
        ("dtype F16", {**header, first: {**header[first], "dtype": "F16"}}),
        ("dtype list", {**header, first: {**header[first], "dtype": ["F32"]}}),
        ("overlapping offsets", {**header, first: {**header[first], "data_offsets": [16, 32]}}),
        ("no metadata", {k: v for k, v in header.items() if k != "__metadata__"}),
        ("version 2", {**header, "__metadata__": {**meta, "distok.checkpoint": "2.0"}}),
        ("content id", {**header, "__metadata__": {**meta, "distok.content_id": "sha256:" + "0" * 64}}),
        ("config not JSON", {**header, "__metadata__": {**meta, "distok.config": "{"}}),
        ("config a list", {**header, "__metadata__": {**meta, "distok.config": "[]"}}),
    ]:
        out.append((name, join(h, body)))
    edits = [
        ("classes", [1, "dog", "pig"]),
        ("classes", ["cat", "cat", "pig"]),
        ("classes", []),
        ("classes", "cat"),
        ("classes", ["", "dog", "pig"]),
        ("dim", "8"),
        ("dim", 0),
        ("dim", 9),
        ("dim", 1e300),
        ("hidden", -1),
        ("latent_dim", None),
        ("token_space", {}),
        ("token_space", "fuzz"),
        ("token_space", {**config["token_space"], "dim": 9}),
        ("token_space", {**config["token_space"], "x": 1}),
        ("activation", "relu"),
        ("fusion_input", "max"),
        ("step", -1),
        ("step", "1"),
        ("recipe", 1),
    ]
    for key, value in edits:
        cfg = {**config, key: value}
        out.append(
            (
                f"config {key} = {str(value)[:30]}",
                join({**header, "__metadata__": {**meta, "distok.config": json.dumps(cfg)}}, body),
            )
        )
    for key in ("classes", "dim", "hidden", "latent_dim", "token_space"):
        cfg = {k: v for k, v in config.items() if k != key}
        out.append(
            (
                f"config without {key}",
                join({**header, "__metadata__": {**meta, "distok.config": json.dumps(cfg)}}, body),
            )
        )
    return out


def bad_specs() -> list[tuple[str, str | bytes, str]]:
    """(name, spec, kind): kind 'inline' (the SPEC argument), 'json', 'yaml', or 'stdin'."""
    inline = [
        "",
        ":",
        ",",
        "cat:",
        ":1",
        "cat:-1",
        "cat:nan",
        "cat:inf",
        "cat:-inf",
        "cat:1e309",
        "cat:0",
        "cat:0,dog:0",
        "cat:1,cat:2",
        "unicorn:1",
        "cat:1:2",
        "cat:1,,dog:1",
        "cat:x",
        "cat:0x10",
        "cat:1_0",
        "cat:1e",
        "cat:1e308,dog:1e308",
        "cat:" + "9" * 400,
        "Cat:1",
        "=cat:1",
        "cat:1,unicorn:0.5",
        "ca\x00t:1",
        "../../cat:1",
        "/etc/passwd:1",
        "missing.distok:1",
        "missing.json",
        "missing.yaml",
        "cat:" + "1" * 5000,
        ",".join(f"c{i}:1" for i in range(5000)),
    ]
    out: list[tuple[str, str | bytes, str]] = [(f"inline {s[:30]!r}", s, "inline") for s in inline]
    docs = [
        '{"cat": 1, "cat": 2}',
        '{"cat": NaN}',
        '{"cat": Infinity}',
        '{"cat": 1e400}',
        '{"cat": -1}',
        "[]",
        "1",
        '"cat"',
        "null",
        "{}",
        '{"cat": "1"}',
        '{"cat": true}',
        '{"unicorn": 1}',
        '{"cat": 0}',
        "{",
        '{"cat": 1} x',
        '{"cat": {"a": 1}}',
        '{"cat": [1]}',
        '{"cat": 1e308, "dog": 1e308}',
        '{"' + "a" * 10000 + '": 1}',
        "[" * 100000,
        '{"cat": 1}' + " " * (1 << 20),
    ]
    out += [(f"json {d[:30]!r}", d, "json") for d in docs]
    yamls = [
        "cat: 1\ncat: 2\n",
        "cat: .nan\n",
        "cat: .inf\n",
        "cat: -1\n",
        "- cat\n",
        "cat\n",
        "cat: [1]\n",
        "cat: !!python/object/apply:os.system ['true']\n",
        "cat: &a 1\ndog: *a\nfox: *b\n",
        "{cat: 1\n",
        "cat: 123456789012345678901234567890123456789012345678901234567890" + "0" * 300 + "\n",
        "cat: '1'\n",
        "cat: yes\n",
        "? [a, b]\n: 1\n",
        "cat: 1\n---\ndog: 1\n",
        "\t cat: 1\n",
    ]
    out += [(f"yaml {y[:30]!r}", y, "yaml") for y in yamls]
    out += [("yaml not UTF-8", b"cat: 1\n\xff\xfe: 2\n", "yaml"), ("json not UTF-8", b'{"\xff": 1}', "json")]
    out += [(f"stdin {d[:30]!r}", d, "stdin") for d in docs[:12]]
    return out


def bad_recipes() -> list[tuple[str, str | bytes]]:
    return [
        ("a list", "- a\n"),
        ("unknown key", "name: x\nnope: 1\n"),
        ("name a list", "name: [1]\n"),
        ("steps bigint", "name: x\ntrain:\n  steps: 123456789012345678901234567890\n"),
        ("steps zero", "name: x\ntrain:\n  steps: 0\n"),
        ("steps string", "name: x\ntrain:\n  steps: '5'\n"),
        ("seed bigint", "name: x\nseed: 99999999999999999999999\n"),
        ("seed negative", "name: x\nseed: -1\n"),
        ("eps inf", "name: x\ntrain:\n  eps1: .inf\n"),
        ("alpha nan", "name: x\ntrain:\n  alpha: .nan\n"),
        ("gamma huge", "name: x\ntrain:\n  gamma: 1e300\n"),
        ("tau > 1", "name: x\ntrain:\n  tau: 1.5\n"),
        ("classes dup", "name: x\nclasses: [cat, cat]\n"),
        ("classes empty", "name: x\nclasses: []\n"),
        ("prompt without <>", "name: x\nrender:\n  prompt: a photo\n"),
        ("prompt two <>", "name: x\nrender:\n  prompt: a <> and <>\n"),
        ("size 7", "name: x\nrender:\n  size: 7\n"),
        ("size huge", "name: x\nrender:\n  size: 10000000\n"),
        ("backend", "name: x\nrender:\n  backend: flux\n"),
        ("estimator", "name: x\nestimator:\n  kind: clip\n"),
        ("template", "name: x\nestimator:\n  template: a\n"),
        ("dtype", "name: x\ndtype: float8\n"),
        ("duplicate key", "name: x\nname: y\n"),
        ("tabs", "name: x\n\tseed: 1\n"),
        ("python tag", "name: !!python/object/apply:os.system ['true']\n"),
        ("not UTF-8", b"name: x\n\xff: 1\n"),
        (
            "anchor bomb",
            "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
        ),
        ("huge", "name: x\n" + "#" * (2 << 20) + "\n"),
    ]


# ---------------------------------------------------------------------------------------------- cases


def cases() -> list[Case]:
    good_ckpt = tiny_checkpoint_bytes()
    tok = str(EXAMPLES / "sampled-cauchy.distok")
    out: list[Case] = []
    # 1. Token files, through every command that reads one (two commands per file, rotating).
    readers = [
        lambda p: ["inspect", p],
        lambda p: ["inspect", "--json", p],
        lambda p: ["diff", tok, p],
        lambda p: ["diff", p, tok],
        lambda p: ["render", p, "a <>", "-o", "r"],
        lambda p: ["estimate", p, "--estimator", "text"],
        lambda p: ["encode", f"{p}:0.5,{tok}:0.5", "-m", "IN/model.safetensors", "-o", "o.distok"],
        lambda p: ["estimate", "--write", p, "--estimator", "text"],
        lambda p: ["export", p, "--to", "comfyui", "-o", "x"],
        lambda p: ["gallery", p, "-o", "g.html"],
        lambda p: ["sweep", p, tok, "-m", "IN/model.safetensors", "-o", "s"],
    ]
    for i, (name, data) in enumerate(bad_token_files()):
        for j in (0, 1):
            make = readers[(2 * i + j) % len(readers)]
            out.append(
                Case("token file: " + name, make("IN/t.distok"), {"t.distok": data, "model.safetensors": good_ckpt})
            )
    # A token file named in a list on stdin.
    for name, data in bad_token_files()[::25]:
        out.append(Case("token file via stdin: " + name, ["inspect", "-"], {"t.distok": data}, stdin="IN/t.distok\n"))
    # 2. Checkpoints, through every command that loads one.
    users = [
        lambda m: ["encode", "cat:1", "-m", m, "-o", "o.distok"],
        lambda m: ["sample", "--n", "2", "-m", m, "-o", "s"],
        lambda m: ["inspect", m],
        lambda m: ["eval", m, "--estimator", "text", "-o", "e"],
        lambda m: ["diff", tok, tok, "-m", m],
        lambda m: ["sweep", "cat:dog", "-m", m, "-o", "s"],
    ]
    for i, (name, data) in enumerate(bad_checkpoints(good_ckpt)):
        for j in (0, 1):
            make = users[(2 * i + j) % len(users)]
            out.append(Case("checkpoint: " + name, make("IN/model.safetensors"), {"model.safetensors": data}))
            if j == 0 and i % 7 == 0:  # the same through a run folder
                out.append(Case("checkpoint in a run folder: " + name, make("IN/run"), {"run/model.safetensors": data}))
    # 3. Distribution specs.
    for name, spec, kind in bad_specs():
        files = {"model.safetensors": good_ckpt}
        for extra in ([], ["--no-normalize"]):
            if kind == "inline":
                out.append(
                    Case(
                        "spec: " + name, ["encode", spec, "-m", "IN/model.safetensors", "-o", "o.distok", *extra], files
                    )
                )
                if not extra:  # the same spec as a sweep's end
                    out.append(
                        Case("spec: " + name, ["sweep", spec, "cat:1", "-m", "IN/model.safetensors", "-o", "s"], files)
                    )
            elif kind == "stdin":
                out.append(
                    Case(
                        "spec: " + name,
                        ["encode", "-", "-m", "IN/model.safetensors", "-o", "o.distok", *extra],
                        files,
                        stdin=spec,
                    )
                )
            else:
                data = spec if isinstance(spec, bytes) else spec.encode()
                out.append(
                    Case(
                        "spec: " + name,
                        ["encode", f"IN/s.{kind}", "-m", "IN/model.safetensors", "-o", "o.distok", *extra],
                        {**files, f"s.{kind}": data},
                    )
                )
    # 4. Recipes, through every command that takes -r.
    recipe_users = [
        lambda r: ["train", "-r", r, "-o", "run", "--steps", "1"],
        lambda r: ["render", tok, "-r", r, "-o", "r"],
        lambda r: ["estimate", tok, "-r", r],
        lambda r: ["demo", "-r", r, "-o", "d"],
        lambda r: ["eval", "IN/model.safetensors", "-r", r, "-o", "e"],
    ]
    for name, text in bad_recipes():
        data = text if isinstance(text, bytes) else text.encode()
        for make in recipe_users:
            out.append(Case("recipe: " + name, make("IN/r.yaml"), {"r.yaml": data, "model.safetensors": good_ckpt}))
    for s in [
        "nope",
        "train.steps",
        "train.steps=",
        "train.steps=abc",
        "train.steps=0",
        "train.nope=1",
        "=1",
        "render.size=7",
        "train.tau=2",
        "train.eps1=nan",
        "classes=[]",
        "train.steps=99999999999999999999999",
        "seed=-1",
        "render.prompt=x",
        "train.q_a=a",
        "name=",
        "estimator.kind=clip",
        "dtype=fp8",
        "train=1",
        "render.size=1e9",
    ]:
        for make in (
            [lambda x: ["train", "-o", "run", "--steps", "1", "--set", x]],
            [lambda x: ["render", tok, "-o", "r", "--set", x]],
            [lambda x: ["eval", "IN/model.safetensors", "--set", x, "-o", "e"]],
        ):
            out.append(Case("--set: " + s, make[0](s), {"model.safetensors": good_ckpt}))
    # 5. Flags and arguments.
    m = ["-m", "IN/model.safetensors"]
    flag_cases = [
        ["sample", "--n", "0"],
        ["sample", "--n", "-1"],
        ["sample", "--n", "100001"],
        ["sample", "--n", "abc"],
        ["sample", "--n", "1e3"],
        ["sample", "--prior", "uniform"],
        ["sample", "--prior", ""],
        ["sample", "--scale", "nan"],
        ["sample", "--scale", "inf"],
        ["sample", "--scale", "-1"],
        ["sample", "--scale", "0"],
        ["sample", "--scale", "1e30"],
        ["sample", "--seed", "-1"],
        ["sample", "--seed", "18446744073709551616"],
        ["sample", "--seed", "x"],
        ["sample", "--from-pool"],
        ["sample", "--nope"],
        ["sample", "extra"],
        ["encode"],
        ["encode", "cat:1", "--nope"],
        ["encode", "cat:1", "extra"],
        ["sweep"],
        ["sweep", "cat:dog", "--steps", "0"],
        ["sweep", "cat:dog", "--steps", "1001"],
        ["sweep", "cat:dog", "--steps", "x"],
        ["sweep", "cat:dog:pig", "--grid", "1"],
        ["sweep", "cat:dog:pig", "--grid", "41"],
        ["sweep", "cat:dog:pig"],
        ["sweep", "cat:dog", "--grid", "3"],
        ["sweep", "cat:dgo"],
        ["sweep", "cat:cat:cat", "--grid", "3"],
        ["sweep", "cat:1", "dog:1", "--slerp"],
        ["sweep", "cat:1", "dog:1", "pig:1"],
        ["sweep", "cat:dog", "--estimate", "clip"],
        ["sweep", "cat:dog:pig:cat"],
        ["sweep", ":"],
        ["sweep", "cat:", "dog:1"],
        ["sweep", "cat:1", "IN/model.safetensors"],
    ]
    for args in flag_cases:
        out.append(
            Case(
                "flags: " + " ".join(args[1:])[:40],
                [*args, *m, "-o", "o" if args[0] in ("sample", "sweep") else "o.distok"],
                {"model.safetensors": good_ckpt},
            )
        )
    render_flags = [
        ["--seeds", "18446744073709551616"],
        ["--seeds", "-1"],
        ["--seeds", "x"],
        ["--seeds", "0-20001"],
        ["--seeds", "5-1"],
        ["--seeds", ""],
        ["--seeds", "1,,2"],
        ["--steps", "0"],
        ["--size", "7"],
        ["--size", "x"],
        ["--batch-size", "0"],
        ["--prior-steps", "1"],
        ["--guidance", "-1"],
        ["--guidance", "nan"],
        ["--device", "tpu"],
        ["--dtype", "float8"],
        ["--from", "IN/missing.png"],
        ["--nope"],
    ]
    for flags in render_flags:
        out.append(Case("render flags: " + " ".join(flags)[:40], ["render", tok, "a <>", "-o", "r", *flags]))
    for prompt in ["a photo", "<> and <>", "", "a " * 200 + "<>", "\x00<>", "<<>>"]:
        out.append(Case(f"render prompt {prompt[:20]!r}", ["render", tok, prompt, "-o", "r", "-r", "tiny"]))
    for flags in [
        ["--estimator", "clip"],
        ["--estimator", ""],
        ["--images", "0"],
        ["--images", "x"],
        ["--plot", "IN/afile/x.png"],
        ["--prompt", "no token"],
        ["--seeds", "x"],
        ["--temperature", "-1"],
        ["--temperature", "nan"],
    ]:
        out.append(Case("estimate flags: " + " ".join(flags)[:40], ["estimate", tok, *flags], {"afile": b"x"}))
    for args in [
        ["inspect"],
        ["inspect", "--neighbors", "-3", tok],
        ["inspect", "--neighbors", "abc", tok],
        ["diff", tok],
        ["diff", tok, tok, tok],
        ["diff"],
        ["eval"],
        ["eval", "IN/model.safetensors", "--estimator", "clip", "-o", "e"],
        ["eval", "IN/model.safetensors", "--distributions", "0", "-o", "e"],
        ["train", "--steps", "0", "-o", "run"],
        ["train", "--seed", "-1", "-o", "run"],
        ["train", "--device", "tpu", "-o", "run"],
        ["train", "-o", "run", "--resume"],
        ["model", "IN/missing"],
        ["model", "IN/afile"],
        ["nope"],
        ["demo", "--steps", "0", "-o", "d"],
    ]:
        out.append(Case("arguments: " + " ".join(args)[:40], args, {"model.safetensors": good_ckpt, "afile": b"x"}))
    # 6. Missing files, folders, FIFOs and devices where a file belongs.
    specials = {"missing": None, "folder": FOLDER, "fifo": FIFO, "/dev/zero": "/dev/zero", "/dev/null": "/dev/null"}
    for label, kind in specials.items():
        path = kind if isinstance(kind, str) else "IN/x.distok"
        files = {} if kind is None or isinstance(kind, str) else {"x.distok": kind}
        files["model.safetensors"] = good_ckpt
        for args in [
            ["inspect", path],
            ["diff", tok, path],
            ["render", path, "-o", "r"],
            ["estimate", path, "--estimator", "text"],
            ["encode", f"{path}:1", *m, "-o", "o.distok"],
            ["encode", path, *m, "-o", "o.distok"],
            ["sample", "-m", path, "-o", "s"],
            ["encode", "cat:1", "-m", path, "-o", "o.distok"],
            ["train", "-r", path, "-o", "run"],
            ["render", tok, "--from", path, "-o", "r"],
            ["eval", path, "-o", "e"],
            ["estimate", "--write", path, "--estimator", "text"],
            ["inspect", "-"],
        ]:
            out.append(Case(f"{label} as input", args, files, stdin=f"{path}\n"))
    # 7. PNG records for render --from.
    for name, png in bad_pngs():
        out.append(Case("png: " + name, ["render", "--from", "IN/p.png", "-o", "r"], {"p.png": png}))
        if name in ("not a PNG", "empty file", "text"):  # estimate reads any image; a record is optional there
            out.append(Case("png: " + name, ["estimate", "IN/p.png", "-r", "tiny"], {"p.png": png}))
    # 8. Exports that would mean nothing or collide.
    export_bad = [
        ["--to", "sdxl"],
        ["--to", ""],
        ["--dtype", "bfloat16"],
        ["--name", "cat"],
        ["--name", "{nope}"],
        ["--name", "{"],
        ["--name", "a"],
        ["--name", "x" * 300],
        ["--name", "../../cat"],
        ["--name", "pig-{nonexistent}"],
        ["--base", "sdxl"],
        ["--base", "sd2"],
        ["--base", ""],
    ]
    for flags in export_bad:
        out.append(
            Case(
                "export flags: " + " ".join(flags)[:40],
                ["export", tok, "-o", "x", *([] if "--to" in flags else ["--to", "a1111"]), *flags],
            )
        )
    for name, data in [("plain file", (EXAMPLES / "plain-textual-inversion.safetensors").read_bytes())] + [
        (f"{label} token", _token_in(space, dim))
        for label, space, dim in [
            ("minilm", "minilm:all-MiniLM-L6-v2", 384),
            ("twin", "twin:kandinsky21-prior", 768),
            ("bert", "bert-base-uncased", 768),
        ]
    ]:
        # a twin token exports for diffusers, which can load the twin: the other three tools refuse it
        for target in ("comfyui", "a1111", "invokeai") + (() if name == "twin token" else ("diffusers",)):
            out.append(
                Case("export: " + name, ["export", tok, "IN/t.distok", "--to", target, "-o", "x"], {"t.distok": data})
            )
    out.append(
        Case(
            "export: same name twice",
            ["export", tok, str(EXAMPLES / "composition.distok"), "--to", "a1111", "--name", "same-1", "-o", "x"],
        )
    )
    for flags in (["--thumb", "8"], ["--thumb", "x"], ["-o", "g.txt"], ["-m", "IN/afile"], ["-m", "IN/missing"]):
        out.append(
            Case(
                "gallery flags: " + " ".join(flags),
                ["gallery", tok, *flags] + ([] if "-o" in flags else ["-o", "g.html"]),
                {"afile": b"x"},
            )
        )
    for name, png in bad_pngs()[:3]:
        out.append(Case("gallery png: " + name, ["gallery", "IN/p.png", "-o", "g.html"], {"p.png": png}))
    out.append(Case("gallery: an empty folder", ["gallery", "IN/empty", "-o", "g.html"], {"empty": FOLDER}))
    # 9. Output paths that cannot be written.
    hostile_outputs = [
        "IN/afile",
        "IN/afile/sub",
        "IN/afile/x.distok",
        "x" * 300,
        "d/" + "y" * 256,
        "nul\x00",
        ".",
        "IN",
    ]
    for o in hostile_outputs:
        for args in (
            ["encode", "cat:1", *m, "-o", o],
            ["sample", "--n", "2", *m, "-o", o],
            ["train", "-o", o, "--steps", "1"],
            ["render", tok, "-o", o],
            ["eval", "IN/model.safetensors", "--estimator", "text", "-o", o],
            ["demo", "-o", o],
            ["estimate", tok, "--plot", o],
            ["export", tok, "--to", "comfyui", "-o", o],
            ["gallery", tok, "-o", o],
        ):
            if o in (".", "IN") and args[0] not in ("encode", "gallery"):
                continue  # an existing folder is a fine output folder
            if o == "IN/afile" and args[0] == "estimate":
                continue  # --plot may replace an existing file
            out.append(Case(f"output {o[:20]!r}", args, {"model.safetensors": good_ckpt, "afile": b"x"}))
    return out


def _token_in(encoder: str, dim: int) -> bytes:
    from distok_cli.files.space import TokenSpace
    from distok_cli.files.tokenfile import Token, to_bytes

    space = TokenSpace(encoder, dim, "fp16-sha256:" + "8" * 64)
    return to_bytes(
        Token(np.full(dim, 0.01, np.float32), space, {"kind": "distribution", "distribution": {"cat": 1.0}})
    )


def bad_pngs() -> list[tuple[str, bytes]]:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    def png(record: object | None, raw: str | None = None) -> bytes:
        info = PngInfo()
        if raw is not None:
            info.add_itxt("distok", raw)
        elif record is not None:
            info.add_itxt("distok", json.dumps(record))
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
        return buf.getvalue()

    good = {
        "token": {"id": "sha256:" + "0" * 64, "path": str(EXAMPLES / "sampled-cauchy.distok")},
        "prompt": "a <>",
        "seed": 0,
        "backend": "kandinsky21",
        "render": {},
        "settings": {},
        "recipe": "tiny",
        "models": {"prior": "x"},
        "dtype": "float32",
    }
    out = [
        ("not a PNG", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
        ("no record", png(None)),
        ("record not JSON", png(None, "{")),
        ("record a list", png([1])),
        ("record NaN", png(None, '{"seed": NaN}')),
        ("empty file", b""),
        ("text", b"hello"),
    ]
    for key, value in [
        ("seed", -1),
        ("seed", "0"),
        ("seed", 2**64),
        ("prompt", "no token"),
        ("backend", "flux"),
        ("token", None),
        ("render", {}),
        ("dtype", "float8"),
        ("models", {}),
        ("recipe", ""),
    ]:
        out.append((f"record {key} = {str(value)[:20]}", png({**good, key: value})))
    return out


# ---------------------------------------------------------------------------------------------- runner


class Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise Hang()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def prepare(root: Path, case: Case) -> None:
    for sub in ("IN", "work"):
        shutil.rmtree(root / sub, ignore_errors=True)
    (root / "IN").mkdir()
    (root / "work").mkdir()
    for name, data in case.files.items():
        p = root / "IN" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if data == FIFO:
            os.mkfifo(p)
        elif data == FOLDER:
            p.mkdir()
        else:
            p.write_bytes(data)
    os.symlink(root / "IN", root / "work" / "IN")  # the arguments say IN/...; the working folder holds only that link


def run_case(root: Path, case: Case, timeout: float) -> dict:
    from distok_cli.cli.app import main

    prepare(root, case)
    before = snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    cwd = os.getcwd()
    os.chdir(root / "work")
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    hung = False
    code = None
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(case.stdin), out, err
    try:
        code = main(list(case.args))
    except Hang:
        hung = True
    except BaseException as exc:  # noqa: BLE001 - anything escaping main is a failure to report
        err.write(f"ESCAPED {type(exc).__name__}: {exc}\n")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(cwd)
    seconds = time.perf_counter() - t0
    after = snapshot(root)
    problems = []
    lines = err.getvalue().splitlines()
    if hung:
        problems.append(f"no answer within {timeout:g} s")
    if code != 2:
        problems.append(f"exit {code}")
    if out.getvalue():
        problems.append("printed on stdout")
    if "Traceback" in err.getvalue() or not lines or not lines[-1].startswith("distok: error: "):
        problems.append("not a one-line error")
    if sum(line.startswith("distok: error: ") for line in lines) != 1:
        problems.append("not exactly one error line")
    if after != before:
        changed = sorted(set(after) ^ set(before) | {k for k in after if k in before and after[k] != before[k]})
        problems.append(f"the sandbox changed: {changed[:5]}")
    shown = [a.replace(str(ROOT) + "/", "")[:80] for a in case.args]
    return {
        "family": case.family,
        "command": case.command,
        "args": shown,
        "code": code,
        "seconds": round(seconds, 3),
        "stderr": err.getvalue()[-400:],
        "problems": problems,
    }


def run(selected: list[Case], timeout: float, progress: bool = False) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="distok-fuzz-"))
    home = root / "home"
    (home / ".config").mkdir(parents=True)
    saved_env = {
        k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME", "DISTOK_MODEL", "DISTOK_DEBUG", "HF_HUB_OFFLINE")
    }
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), HF_HUB_OFFLINE="1")
    os.environ.pop("DISTOK_MODEL", None)
    os.environ.pop("DISTOK_DEBUG", None)
    os.environ.setdefault("DISTOK_CACHE", str(ROOT / ".pytest_cache" / "distok"))  # twins: a cache, outside the sandbox
    results = []
    try:
        for i, case in enumerate(selected):
            results.append(run_case(root, case, timeout))
            if progress and i % 100 == 0:
                bad = sum(bool(r["problems"]) for r in results)
                print(f"{i}/{len(selected)} cases, {bad} failing", file=sys.__stderr__, flush=True)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)
    return results


def report(results: list[dict], timeout: float, wall: float) -> str:
    failures = [r for r in results if r["problems"]]
    by_command = collections.Counter(r["command"] for r in results)
    by_family = collections.Counter(r["family"].split(":")[0] for r in results)
    slowest = max(results, key=lambda r: r["seconds"])
    lines = [
        "# Hostile-input fuzzing (`python bench/fuzz.py`)",
        "",
        f"{len(results)} cases, **{len(failures)} failing**, in {wall:.0f} s on this machine's CPU "
        f"(per-case limit {timeout:g} s; slowest {slowest['seconds']:.2f} s: `{' '.join(slowest['args'])[:80]}`).",
        "",
        "Each case must exit 2 with one line on stderr and no traceback, print nothing on stdout, leave its "
        "sandbox (inputs, working folder, HOME, config folder) exactly as it was, and finish in time.",
        "",
        "| command | cases |",
        "|---|---|",
        *[f"| {c} | {n} |" for c, n in sorted(by_command.items())],
        "",
        "| family | cases |",
        "|---|---|",
        *[f"| {f} | {n} |" for f, n in sorted(by_family.items())],
        "",
    ]
    if failures:
        lines += ["## Failures", ""]
        for r in failures[:200]:
            lines.append(
                f"- `{' '.join(r['args'])[:120]}` ({r['family']}): {'; '.join(r['problems'])} — "
                f"`{r['stderr'].strip().splitlines()[-1][:160] if r['stderr'].strip() else ''}`"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="run only this many cases (spread over all families)")
    ap.add_argument("--every", type=int, default=1, help="run every K-th case")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fuzz"), help="report prefix (.md and .json)")
    args = ap.parse_args(argv)
    all_cases = cases()
    selected = all_cases[:: max(1, args.every)]
    if args.limit:
        selected = selected[:: max(1, len(selected) // args.limit)][: args.limit]
    t0 = time.perf_counter()
    results = run(selected, args.timeout, progress=True)
    wall = time.perf_counter() - t0
    text = report(results, args.timeout, wall)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(
        json.dumps(
            {
                "cases": len(results),
                "failing": sum(bool(r["problems"]) for r in results),
                "failures": [r for r in results if r["problems"]],
            },
            indent=1,
        )
        + "\n"
    )
    print(text.split("\n\n")[1])
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

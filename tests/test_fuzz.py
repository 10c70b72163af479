"""Corrupt token files and malformed arguments: every one exits 2 with one line and writes nothing."""

from __future__ import annotations

import json
import os
import random
import struct
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distok_cli.files import tokenfile

from .conftest import EXAMPLES, assert_one_line_error, run_cli

GOOD = (EXAMPLES / "sampled-cauchy.distok").read_bytes()
GOOD_PATH = str(EXAMPLES / "pig-sheep-snake.distok")
(N,) = struct.unpack("<Q", GOOD[:8])


def _known_bad() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []
    # Truncation at every offset of the length prefix and header, and a spread through the data.
    for cut in list(range(0, 8 + N)) + list(range(8 + N, len(GOOD), 97)):
        cases.append((f"trunc{cut}", GOOD[:cut]))
    header = json.loads(GOOD[8 : 8 + N])
    meta = header["__metadata__"]
    vec = tokenfile.from_bytes(GOOD).vector

    def build(h: dict, data: bytes) -> bytes:
        raw = json.dumps(h).encode()
        return struct.pack("<Q", len(raw)) + raw + data

    for i, bad in enumerate([np.nan, np.inf, -np.inf]):
        for pos in (0, 1, 383, 767):
            v = vec.copy()
            v[pos] = bad
            m = dict(meta, **{"distok.content_id": tokenfile.content_id(np.nan_to_num(v))})
            cases.append((f"nonfinite{i}-{pos}", build({**header, "__metadata__": m}, v.astype("<f4").tobytes())))
    for shape in ([768], [2, 384], [768, 1], [1, 767], [1, 769], [0, 768], [1, 0], [], [1, 768, 1]):
        h = {**header, "emb_params": {**header["emb_params"], "shape": shape}}
        cases.append((f"shape{shape}", build(h, vec.tobytes())))
    for key in ("distok.token_space", "distok.source", "distok.estimate", "distok.model"):
        for junk in ("", "{", "[]", "null", "1", '{"kind":"nope"}', "NaN", '{"distribution":{"a":-1}}'):
            cases.append(
                (f"meta-{key}-{junk}", build({**header, "__metadata__": dict(meta, **{key: junk})}, vec.tobytes()))
            )
    for key in ("distok.content_id", "distok.token_space", "distok.source", "distok.format"):
        cases.append(
            (
                f"missing-{key}",
                build({**header, "__metadata__": {k: v for k, v in meta.items() if k != key}}, vec.tobytes()),
            )
        )
    big = dict(meta, **{"x.pad": "a" * (1 << 20)})
    cases.append(("oversized", build({**header, "__metadata__": big}, vec.tobytes())))
    cases.append(("extra-tensor", build({**header, "z": header["emb_params"]}, vec.tobytes() * 2)))
    return cases


KNOWN_BAD = _known_bad()


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_every_known_bad_file_exits_2_with_one_line_and_writes_nothing(tmp_path):
    for i, (_, data) in enumerate(KNOWN_BAD):
        p = tmp_path / f"{i}.distok"
        p.write_bytes(data)
    before = sorted(os.listdir(tmp_path))
    refused = 0
    for i, (name, _) in enumerate(KNOWN_BAD):
        p = str(tmp_path / f"{i}.distok")
        args = ["inspect", p] if i % 3 else (["diff", GOOD_PATH, p] if i % 2 else ["inspect", "--json", p])
        r = run_cli(args)
        assert r.out == "", name
        try:
            assert_one_line_error(r, 2, p)
        except AssertionError as exc:
            raise AssertionError(f"case {name}: {exc}") from None
        refused += 1
    assert sorted(os.listdir(tmp_path)) == before
    assert refused >= 1000  # truncations, non-finite values, shapes, junk and missing metadata


def _reference_reader_accepts(data: bytes) -> bool:
    """The 10-line reader of formats/distok-token-v1.md §9, plus the distribution rule (independent oracle)."""
    import hashlib

    try:
        n = struct.unpack("<Q", data[:8])[0]
        if n > 1 << 20:
            return False
        h = json.loads(data[8 : 8 + n])
        meta = h.pop("__metadata__")
        if meta["distok.format"] != "distok.token" or meta["distok.format_version"].split(".")[0] != "1":
            return False
        ((name, t),) = h.items()
        body = data[8 + n :]
        if name != "emb_params" or t["dtype"] != "F32" or t["shape"] != [1, 768] or t["data_offsets"] != [0, 3072]:
            return False
        if len(body) != 3072 or meta["distok.content_id"] != "sha256:" + hashlib.sha256(body).hexdigest():
            return False
        for key in ("distok.source", "distok.estimate"):
            if key in meta:
                d = json.loads(meta[key])["distribution"] if "distribution" in json.loads(meta[key]) else None
                if d is not None and (abs(sum(d.values()) - 1) > 1e-6 or min(d.values()) < 0):
                    return False
        return bool(np.isfinite(np.frombuffer(body, "<f4")).all())
    except Exception:
        return False


@pytest.mark.slow  # long (CI runs the slow tests too)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 8 + N - 1), byte=st.integers(0, 255))
def test_random_header_byte_mutations_never_crash(tmp_path, pos, byte):
    data = bytearray(GOOD)
    if data[pos] == byte:
        return
    data[pos] = byte
    p = tmp_path / "m.distok"
    p.write_bytes(bytes(data))
    r = run_cli(["inspect", "--json", str(p)])
    if r.code == 0:
        # Accepted: then the file must really be valid (a byte inside a free-text value, say).
        assert _reference_reader_accepts(bytes(data)), r.out
    else:
        assert_one_line_error(r, 2, str(p))


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_malformed_arguments_exit_2():
    """200 random argument lists: each is refused with exit 2 and one line, or, when it happens to be
    well formed (`diff -- GOOD GOOD`, `inspect GOOD -q`), succeeds with output on stdout and nothing on stderr."""
    good = str(EXAMPLES / "sampled-cauchy.distok")
    refused = 0
    for seed in range(200):
        rng = random.Random(seed)
        junk = [
            "--neighbors",
            "-k",
            "--json",
            "-q",
            "--nope",
            "-x",
            "",
            "-",
            "--",
            "=",
            "--neighbors=-3",
            "--neighbors=abc",
            "/does/not/exist",
            str(EXAMPLES),
            "--help=1",
            good,
        ]
        args = [rng.choice(junk) for _ in range(rng.randint(1, 4))]
        cmd = rng.choice(["inspect", "diff"])
        r = run_cli([cmd, *args], stdin="/also/missing\n")
        if r.code == 0:
            assert r.out and r.err == "", (cmd, args, r)
        else:
            assert_one_line_error(r, 2)
            refused += 1
    assert refused >= 150


def _fuzz_module():
    import importlib.util

    from .conftest import ROOT

    spec = importlib.util.spec_from_file_location("distok_fuzz", ROOT / "bench" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def test_the_fuzz_script_reaches_3000_cases_across_all_commands():
    fuzz = _fuzz_module()
    cases = fuzz.cases()
    assert len(cases) >= 3000
    assert {c.command for c in cases} >= {
        "train",
        "encode",
        "sample",
        "render",
        "estimate",
        "inspect",
        "diff",
        "eval",
        "demo",
        "model",
        "export",
        "gallery",
        "sweep",
    }


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_a_slice_of_the_fuzz_cases_all_exit_2_and_leave_nothing():
    """Every 25th case of bench/fuzz.py (all families), under the same checks and timeout as the script."""
    fuzz = _fuzz_module()
    results = fuzz.run(fuzz.cases()[::25], timeout=30)
    failures = [(r["args"], r["problems"], r["stderr"][-200:]) for r in results if r["problems"]]
    assert len(results) >= 120 and not failures, failures


def test_the_fuzz_checks_catch_a_write_and_a_wrong_exit(tmp_path):
    """The harness itself: a case that succeeds and writes a file is reported, not passed."""
    fuzz = _fuzz_module()
    ok = fuzz.Case("control", ["inspect", str(EXAMPLES / "sampled-cauchy.distok")])
    writes = fuzz.Case(
        "control",
        ["sample", "--n", "1", "-m", "IN/model.safetensors", "-o", "s", "-q"],
        {"model.safetensors": fuzz.tiny_checkpoint_bytes()},
    )
    a, b = fuzz.run([ok, writes], timeout=30)
    assert a["problems"] == ["exit 0", "printed on stdout", "not a one-line error", "not exactly one error line"]
    assert (
        b["problems"][0] == "exit 0"
        and b["problems"][-1] == "the sandbox changed: ['work', 'work/s', 'work/s/gaussian-s0-0000.distok']"
    )

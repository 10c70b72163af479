"""CLI conventions, `inspect` and `diff`: exit codes, exact messages, numbers worked out by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from distok_cli.files import tokenfile
from distok_cli.files.space import TokenSpace
from distok_cli.files.tokenfile import Token

from .conftest import EXAMPLES, assert_one_line_error, run_cli

PIG = str(EXAMPLES / "pig-sheep-snake.distok")
CAUCHY = str(EXAMPLES / "sampled-cauchy.distok")
PLAIN = str(EXAMPLES / "plain-textual-inversion.safetensors")
SPACE = TokenSpace("enc", 2, "fp16-sha256:" + "2" * 64)


def test_help_lists_every_command():
    r = run_cli(["--help"])
    assert r.code == 0
    for name in [
        "train",
        "encode",
        "sample",
        "sweep",
        "render",
        "estimate",
        "inspect",
        "diff",
        "eval",
        "demo",
        "model",
    ]:
        assert f"\n  {name} " in r.out


def test_light_commands_do_not_import_heavy_libraries():
    code = (
        "import sys, tempfile; from distok_cli.cli.app import main; "
        f"rc = [main(['--help']), main(['inspect', {PIG!r}, '--json']), main(['diff', {PIG!r}, {CAUCHY!r}]), "
        f"main(['export', {PIG!r}, '--to', 'comfyui', '-q', '-o', tempfile.mkdtemp()])]; "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'accelerate', 'matplotlib') if m in sys.modules]; "
        "print(rc, heavy, file=sys.stderr); sys.exit(1 if heavy or rc != [0, 0, 0, 0] else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]


def test_inspect_json_golden():
    r = run_cli(["inspect", "--json", PIG])
    assert r.code == 0 and r.err == ""
    d = json.loads(r.out)
    assert d["id"] == tokenfile.load(PIG).id
    assert d["source"] == {"kind": "distribution", "distribution": {"pig": 0.55, "sheep": 0.25, "snake": 0.2}}
    assert d["token_space"]["encoder"] == "kandinsky-community/kandinsky-2-1-prior"
    vec = tokenfile.load(PIG).vector.astype(np.float64)
    assert d["stats"]["norm"] == pytest.approx(math.sqrt(float((vec**2).sum())))
    assert d["stats"]["max"] == 50 / 2048 and d["stats"]["min"] == -50 / 2048
    assert d["kind"] == "distok" and d["dim"] == 768


def test_inspect_reads_paths_from_stdin_one_json_line_each():
    r = run_cli(["inspect", "--json", "-"], stdin=f"{PIG}\n\n{CAUCHY}\n{PLAIN}\n")
    lines = r.out.splitlines()
    assert r.code == 0 and len(lines) == 3
    assert [json.loads(x)["path"] for x in lines] == [PIG, CAUCHY, PLAIN]
    assert json.loads(lines[2])["kind"] == "textual-inversion"


def test_inspect_human_view_shows_bars_and_estimate():
    r = run_cli(["inspect", CAUCHY])
    assert r.code == 0
    assert "latent: cauchy prior, scale 1.0, seed 0, index 3" in r.out
    assert "blip-itm:Salesforce/blip-itm-large-coco, 4 seeds" in r.out
    assert "fox ███████████████ 0.500" in r.out


def test_inspect_neighbors_without_a_local_encoder_says_how_to_get_it():
    r = run_cli(["inspect", "--neighbors", "5", PIG])
    assert_one_line_error(
        r, 1, "model 'kandinsky-community/kandinsky-2-1-prior' is not a local folder and not in the Hugging Face cache"
    )
    assert "hf download kandinsky-community/kandinsky-2-1-prior" in r.err


def test_inspect_neighbors_on_a_plain_file_is_bad_input():
    r = run_cli(["inspect", "--neighbors", "5", PLAIN])
    assert_one_line_error(r, 2, "names no token space")


def _plain(tmp_path, name, vec):
    data = np.asarray(vec, "<f4").tobytes()
    h = json.dumps({"v": {"dtype": "F32", "shape": [len(vec)], "data_offsets": [0, len(data)]}}).encode()
    p = tmp_path / name
    p.write_bytes(len(h).to_bytes(8, "little") + h + data)
    return str(p)


def test_diff_numbers_by_hand(tmp_path):
    a = _plain(tmp_path, "a.safetensors", [3.0, 4.0])
    b = _plain(tmp_path, "b.safetensors", [4.0, 3.0])
    r = run_cli(["diff", "--json", a, b])
    d = json.loads(r.out)
    assert r.code == 0
    assert d["cosine"] == pytest.approx(24 / 25)
    assert d["l2"] == pytest.approx(math.sqrt(2))
    assert d["norm_ratio"] == pytest.approx(1.0)
    assert d["source"] is None and d["latent_distance"] is None


def test_diff_distributions_and_latents_by_hand(tmp_path):
    def save(name, dist, z):
        t = Token(
            np.array([1.0, 0.0], np.float32),
            space=SPACE,
            source={"kind": "latent", "prior": "gaussian", "z": z, "distribution": dist},
        )
        return tokenfile.save(t, tmp_path / name)

    a = save("a.distok", {"cat": 0.5, "dog": 0.5}, [0.0, 0.0])
    b = save("b.distok", {"cat": 1.0}, [3.0, 4.0])
    d = json.loads(run_cli(["diff", "--json", a, b]).out)
    # m = (0.75, 0.25): JS = ½·½·ln(4/3) + ½·ln(4/3) = ¾·ln(4/3)
    assert d["source"]["js"] == pytest.approx(0.75 * math.log(4 / 3))
    assert d["source"]["per_class"] == {"cat": 0.5, "dog": -0.5}
    assert d["latent_distance"] == pytest.approx(5.0)
    assert d["same_token_space"] is True


def test_diff_human_view(tmp_path):
    r = run_cli(["diff", PIG, CAUCHY])
    assert r.code == 0 and "cosine" in r.out and "L2" in r.out


def test_diff_of_different_dimensions_is_bad_input(tmp_path):
    a = _plain(tmp_path, "a.safetensors", [3.0, 4.0])
    assert_one_line_error(run_cli(["diff", a, PIG]), 2, "cannot compare tokens of different dimension (2 vs 768)")


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect"], "Missing argument 'FILE...'"),
        (["inspect", "--neighbors", "x", PIG], "Invalid value for '--neighbors'"),
        (["inspect", "--neighbors", "-1", PIG], "Invalid value for '--neighbors'"),
        (["inspect", "--bogus", PIG], "No such option: --bogus"),
        (["diff", PIG], "Missing argument 'B'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["inspect", "/nonexistent/x.distok"], "/nonexistent/x.distok: no such file"),
    ],
)
def test_bad_usage_is_one_line_exit_2(args, message):
    assert_one_line_error(run_cli(args), 2, message)


def test_stdin_dash_with_nothing_is_bad_input():
    assert_one_line_error(run_cli(["inspect", "-"], stdin=""), 2, "no input files")


def test_debug_shows_traceback(monkeypatch):
    monkeypatch.setenv("DISTOK_DEBUG", "1")
    from distok_cli.errors import InvalidTokenFile

    with pytest.raises(InvalidTokenFile):
        run_cli(["inspect", "/nonexistent/x.distok"])


def test_inspect_json_is_byte_exact_against_the_golden_output(monkeypatch):
    from .conftest import ROOT

    monkeypatch.chdir(ROOT)
    r = run_cli(
        [
            "inspect",
            "--json",
            "formats/examples/pig-sheep-snake.distok",
            "formats/examples/plain-textual-inversion.safetensors",
        ]
    )
    assert r.code == 0
    assert r.out == (ROOT / "tests" / "data" / "inspect-examples.jsonl").read_text()


def test_version_and_bare_invocation():
    from distok_cli import __version__

    assert run_cli(["--version"]).out == f"distok {__version__}\n"
    r = run_cli([])
    assert r.code == 0 and r.out.startswith("Usage: distok [OPTIONS] COMMAND [ARGS]...") and r.err == ""


def test_unexpected_errors_are_one_line_and_out_of_memory_suggests_what_to_do(monkeypatch):
    from distok_cli.files import summary as report  # the module inspect calls

    def boom(token):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(report, "describe", boom)
    r = run_cli(["inspect", "--json", PIG])
    assert_one_line_error(
        r, 1, "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (try a smaller --batch-size or --offload)"
    )

    def bug(token):
        raise KeyError("x")

    monkeypatch.setattr(report, "describe", bug)
    assert_one_line_error(
        run_cli(["inspect", "--json", PIG]), 1, "KeyError: 'x' (set DISTOK_DEBUG=1 for the traceback)"
    )


def test_cli_reference_is_up_to_date(tmp_path):
    """docs/cli.md is generated: `python -m typer distok_cli.cli.app utils docs --name distok --output docs/cli.md`."""
    from .conftest import ROOT

    out = tmp_path / "cli.md"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "distok_cli.cli.app",
            "utils",
            "docs",
            "--name",
            "distok",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), (
        "regenerate docs/cli.md (see this test's docstring)"
    )

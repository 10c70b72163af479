"""`distok sweep`: weights, between distributions, the triangle and between tokens; exact weights, order,
lineage, determinism, smoothness, monotonicity, the strip in `render --grid` and in the gallery, bad input."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from distok_cli.files import checkpoint, tokenfile
from distok_cli.method import sweep as sw

from .conftest import assert_one_line_error, run_cli, write_model

CLASSES = ["cat", "dog", "pig", "sheep", "snake"]
SPACE = {"encoder": "enc", "dim": 16, "fingerprint": "fp16-sha256:" + "1" * 64}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("m") / "model.safetensors", SPACE, CLASSES)


def _tokens(r):
    assert r.code == 0, r.err
    return [tokenfile.load(p) for p in r.out.split()]


def test_a_line_between_two_classes_has_exact_weights_order_and_lineage(model, tmp_path):
    r = run_cli(["sweep", "cat:dog", "--steps", "5", "-m", model, "-o", tmp_path / "s"])
    toks = _tokens(r)
    assert r.out.split() == [
        str(tmp_path / "s" / f"{i:03d}-{n}.distok")
        for i, n in enumerate(["cat100", "cat75-dog25", "cat50-dog50", "dog75-cat25", "dog100"])
    ]
    ckpt = checkpoint.load(model)
    from distok_cli.method.generate import encode

    for i, tok in enumerate(toks):
        t = i / 4
        want = {c: w for c, w in (("cat", 1 - t), ("dog", t)) if w > 0}
        assert tok.source["distribution"] == pytest.approx(want, abs=1e-12)
        assert tok.source["sweep"] == {
            "path": "weights",
            "index": i,
            "count": 5,
            "t": t,
            "interpolation": "lerp",
            "ends": [{"cat": 1.0}, {"dog": 1.0}],
        }
        np.testing.assert_array_equal(tok.vector, encode(ckpt, want).vector)  # exactly `distok encode`'s token
        assert tok.lineage["sweep"]["index"] == i and tok.lineage["kind"] == "distribution"
    assert "5 tokens along the weights" in r.err


def test_between_two_distributions_and_determinism(model, tmp_path):
    args = ["sweep", "pig:0.5,sheep:0.5", "cat:1", "--steps", "3", "-m", model, "-q"]
    a = run_cli([*args, "-o", tmp_path / "a"])
    b = run_cli([*args, "-o", tmp_path / "b"])
    toks = _tokens(a)
    assert toks[1].source["distribution"] == pytest.approx({"pig": 0.25, "sheep": 0.25, "cat": 0.5})
    assert toks[0].source["sweep"]["ends"] == [{"pig": 0.5, "sheep": 0.5}, {"cat": 1.0}]
    for pa, pb in zip(a.out.split(), b.out.split()):  # the same inputs give the same bytes
        assert Path(pa).read_bytes() == Path(pb).read_bytes()


def test_the_triangle_covers_every_three_class_mixture_row_by_row(model, tmp_path):
    toks = _tokens(run_cli(["sweep", "pig:sheep:snake", "--grid", "3", "-m", model, "-o", tmp_path / "t", "-q"]))
    assert [t.source["sweep"]["point"] for t in toks] == [
        [2, 0, 0],
        [1, 1, 0],
        [1, 0, 1],
        [0, 2, 0],
        [0, 1, 1],
        [0, 0, 2],
    ]
    assert toks[4].source["distribution"] == {"sheep": 0.5, "snake": 0.5}
    assert all(t.source["sweep"]["grid"] == 3 and t.source["sweep"]["count"] == 6 for t in toks)
    r = run_cli(["sweep", "pig:sheep:snake", "--grid", "5", "-m", model, "-o", tmp_path / "t5", "--json", "-q"])
    rep = json.loads(r.out)
    assert rep["count"] == 15 and rep["path"] == "triangle"
    assert rep["smoothness"]["steps_measured"] == 30  # 3 · (1 + 2 + 3 + 4) neighbour pairs in a 5-point triangle


def test_between_tokens_of_the_model_goes_through_its_latent_space(model, tmp_path):
    a, b = (tmp_path / "a.distok", tmp_path / "b.distok")
    samples = _tokens(run_cli(["sample", "--n", "2", "-m", model, "-o", tmp_path / "z", "-q"]))
    samples[0].save(a), samples[1].save(b)
    ckpt = checkpoint.load(model)
    for slerp in (False, True):
        r = run_cli(
            ["sweep", a, b, "--steps", "3", "-m", model, "-o", tmp_path / f"l{slerp}", *(["--slerp"] if slerp else [])]
        )
        toks = _tokens(r)
        assert (
            "3 tokens through the model's latent space" in r.err and r.err.count(", slerp" if slerp else ", lerp") == 1
        )
        np.testing.assert_array_equal(toks[0].vector, samples[0].vector)
        np.testing.assert_array_equal(toks[-1].vector, samples[1].vector)
        za, zb = (np.asarray(s.source["z"], np.float64) for s in samples)
        if slerp:  # half-way: the unit bisector, with the mean norm
            bis = za / np.linalg.norm(za) + zb / np.linalg.norm(zb)
            z_mid = bis / np.linalg.norm(bis) * (np.linalg.norm(za) + np.linalg.norm(zb)) / 2
        else:
            z_mid = (za + zb) / 2
        np.testing.assert_allclose(toks[1].source["z"], z_mid, rtol=0, atol=1e-9)
        # sampled tokens are decode(z): the path is the latent path itself
        np.testing.assert_allclose(toks[1].vector, ckpt.decode(z_mid[None].astype(np.float32))[0], rtol=0, atol=1e-5)
        assert toks[1].source["sweep"]["path"] == "latent" and toks[1].source["kind"] == "composition"
        assert [p["weight"] for p in toks[1].source["parents"]] == [0.5, 0.5]
        assert toks[1].model["hash"] == ckpt.hash


def test_between_tokens_of_another_model_goes_through_token_space(model, tmp_path):
    other = write_model(tmp_path / "other.safetensors", SPACE, CLASSES, seed=7)
    a = _tokens(run_cli(["encode", "cat:1", "-m", other, "-o", tmp_path / "a.distok", "-q"]))[0]
    b = _tokens(run_cli(["encode", "dog:1", "-m", other, "-o", tmp_path / "b.distok", "-q"]))[0]
    r = run_cli(
        ["sweep", tmp_path / "a.distok", tmp_path / "b.distok", "--steps", "5", "-m", model, "-o", tmp_path / "s"]
    )
    toks = _tokens(r)
    assert "5 tokens through token space" in r.err
    np.testing.assert_allclose(toks[2].vector, (a.vector.astype(np.float64) + b.vector) / 2, rtol=0, atol=1e-7)
    assert toks[2].source["sweep"]["path"] == "token" and "z" not in toks[2].source and toks[2].model is None
    assert toks[2].source["distribution"] == {"cat": 0.5, "dog": 0.5}
    # smoothness by hand: a straight line in token space has equal steps
    rep = json.loads(
        run_cli(
            [
                "sweep",
                tmp_path / "a.distok",
                tmp_path / "b.distok",
                "--steps",
                "5",
                "-m",
                model,
                "-o",
                tmp_path / "j",
                "--json",
                "-q",
            ]
        ).out
    )
    step = float(np.linalg.norm(b.vector.astype(np.float64) - a.vector) / 4)
    assert rep["smoothness"]["mean_step"] == pytest.approx(step, rel=1e-5)
    assert rep["smoothness"]["max_over_mean"] == pytest.approx(1.0, abs=1e-5)


def test_smoothness_is_the_largest_step_over_the_mean_step(model, tmp_path):
    r = run_cli(["sweep", "cat:snake", "--steps", "6", "-m", model, "-o", tmp_path / "s", "--json", "-q"])
    rep = json.loads(r.out)
    vecs = [tokenfile.load(p).vector.astype(np.float64) for p in rep["files"]]
    d = [np.linalg.norm(y - x) for x, y in zip(vecs, vecs[1:])]
    assert rep["smoothness"]["max_step"] == pytest.approx(max(d), rel=1e-6)
    assert rep["smoothness"]["max_over_mean"] == pytest.approx(max(d) / (sum(d) / 5), rel=1e-6)
    assert rep["monotonic"] is None and rep["labels"][0] == "cat 1" and rep["labels"][-1] == "snake 1"


def test_monotonic_shares_by_hand():
    s = sw.Sweep(
        "weights",
        [
            tokenfile.Token(np.zeros(2, np.float32), source={"kind": "distribution", "distribution": d})
            for d in ({"cat": 1.0}, {"cat": 0.5, "dog": 0.5}, {"dog": 1.0})
        ],
        ["", "", ""],
    )
    ok = sw.monotonic(s, [{"cat": 0.9, "dog": 0.1}, {"cat": 0.5, "dog": 0.5}, {"cat": 0.5, "dog": 0.5}])
    assert (
        ok["all"] is True and ok["classes"]["cat"]["direction"] == "down" and ok["classes"]["dog"]["direction"] == "up"
    )
    bad = sw.monotonic(s, [{"cat": 0.9, "dog": 0.1}, {"cat": 0.2, "dog": 0.8}, {"cat": 0.3, "dog": 0.7}])
    assert (
        bad["all"] is False
        and bad["classes"]["cat"]["monotonic"] is False
        and bad["classes"]["dog"]["monotonic"] is False
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["cat:dog", "--steps", "1"], "--steps must be between 2 and 1000, got 1"),
        (["cat:dog", "--steps", "1001"], "--steps must be between 2 and 1000, got 1001"),
        (["cat:dgo", "--steps", "3"], "unknown class 'dgo' (did you mean: dog?) (the model knows 5 classes)"),
        (["cat:0.5,dgo:0.5", "pig:1"], "unknown class 'dgo' (did you mean: dog?)"),
        (["cat:dog:pig"], "three corners (a:b:c) make a triangle: give grid, e.g. --grid 5"),
        (["cat:dog:pig", "--grid", "41"], "--grid must be between 2 and 40"),
        (["cat:dog", "--grid", "3"], "grid is for three corners (a:b:c)"),
        (["cat:dog:pig:sheep"], "give two classes (a:b) for a line or three (a:b:c) for a triangle"),
        (["cat:1", "dog:1", "pig:1"], "a sweep has one corner spec (a:b or a:b:c) or two ends, got 3"),
        (["cat:1", "dog:1", "--slerp"], "slerp is for sweeps between tokens"),
        (
            ["cat:1", "EX/pig-sheep-snake.distok"],
            "give two distributions or two token files as the ends, not one of each",
        ),
        (["EX/pig-sheep-snake.distok", "EX/sdxl-pig-sheep-snake.distok"], "no path joins different token spaces"),
        (
            ["EX/pig-sheep-snake.distok", "EX/sampled-cauchy.distok"],
            "token has one 768-d vector, enc expects one 16-d vector",
        ),
    ],
)
def test_bad_sweeps_are_refused_before_anything_is_written(model, tmp_path, args, message):
    from .conftest import EXAMPLES

    args = [a.replace("EX/", f"{EXAMPLES}/") for a in args]
    r = run_cli(["sweep", *args, "-m", model, "-o", tmp_path / "s"])
    assert_one_line_error(r, 2, message)
    assert not (tmp_path / "s").exists()


def test_the_api_refuses_with_typed_exceptions(model):
    from distok_cli import BadInput, load

    m = load(model)
    with pytest.raises(BadInput, match="--steps must be between 2 and 1000"):
        m.sweep("cat:dog", steps=0)
    with pytest.raises(BadInput, match=re.escape("unknown class 'cot' (did you mean: cat?)")):
        m.sweep("cot:dog")


# --------------------------------------------------------------------- rendering a sweep, the gallery


@pytest.fixture(scope="module")
def twin_model(tmp_path_factory, kandinsky):
    """A model in the Kandinsky twin's token space (renderable with the tiny recipe)."""
    classes = ["cat", "dog", "pig", "sheep", "snake", "fox", "owl", "frog"]
    emb = kandinsky.text.class_embeddings(classes).numpy()
    return write_model(
        tmp_path_factory.mktemp("tm") / "model.safetensors",
        kandinsky.text.space.to_json(),
        classes,
        class_embeddings=emb,
        hidden=16,
        latent=4,
    )


def test_render_grid_lays_a_sweep_out_as_a_strip_and_a_triangle(twin_model, tmp_path):
    from PIL import Image

    line = run_cli(["sweep", "cat:dog", "--steps", "3", "-m", twin_model, "-o", tmp_path / "l", "-q"])
    r = run_cli(
        ["render", "-", "a photo of a <>", "a plush toy of a <>", "--grid", "-o", tmp_path / "r", "-q"], stdin=line.out
    )
    assert r.code == 0, r.err
    with Image.open(tmp_path / "r" / "grid.png") as im:  # 2 prompt rows × 3 tokens in path order
        assert im.size == (140 + 3 * 164 + 4, 28 + 2 * 164 + 4)
    tri = run_cli(["sweep", "cat:dog:pig", "--grid", "2", "-m", twin_model, "-o", tmp_path / "t", "-q"])
    r = run_cli(["render", "-", "a photo of a <>", "--grid", "-o", tmp_path / "rt", "-q"], stdin=tri.out)
    assert r.code == 0, r.err
    with Image.open(tmp_path / "rt" / "grid.png") as im:  # rows of 1 and 2 cells of 128 px, labelled
        assert im.size == (2 * 134 + 6, 24 + 2 * (128 + 16 + 6) + 6)
        row0 = np.asarray(im.convert("L"))[24 + 6 + 64]  # the first row's one image, centred (x 73 to 201)
        assert (row0[:70] == 255).all() and (row0[80:190] != 255).any() and (row0[205:] == 255).all()
        row1 = np.asarray(im.convert("L"))[24 + 6 + 150 + 64]  # the second row's two images, edge to edge
        assert (row1[10:130] != 255).any() and (row1[145:265] != 255).any()


def test_sweep_estimates_monotonicity_and_plot(twin_model, tmp_path):
    r = run_cli(
        ["sweep", "cat:dog", "--steps", "3", "-m", twin_model, "-o", tmp_path / "s", "--estimate", "text", "--json"]
    )
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    assert set(rep["monotonic"]["classes"]) == {"cat", "dog"} and isinstance(rep["monotonic"]["all"], bool)
    tok = tokenfile.load(rep["files"][1])
    shares = rep["monotonic"]["classes"]["dog"]["shares"]
    assert tok.estimate["distribution"]["dog"] == pytest.approx(shares[1])
    assert tok.estimate["estimator"].startswith("text:") and math.isfinite(tok.estimate["kl"])
    assert (tmp_path / "s" / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert "end-class shares move monotonically" in r.err or "not monotonic:" in r.err
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "sweep.png").write_bytes(b"mine")
    again = run_cli(["sweep", "cat:dog", "--steps", "2", "-m", twin_model, "-o", tmp_path / "p", "--estimate", "text"])
    assert_one_line_error(again, 2, "sweep.png exists (use --overwrite to replace)")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["sweep.png"]


def test_the_gallery_shows_a_sweep_as_one_strip(twin_model, tmp_path):
    from .test_gallery import _body, _browse, screenshot

    site = tmp_path / "site"
    line = run_cli(["sweep", "cat:dog", "--steps", "4", "-m", twin_model, "-o", site / "tokens", "-q"])
    assert run_cli(["render", "-", "a photo of a <>", "-o", site / "renders", "-q"], stdin=line.out).code == 0
    run_cli(["sweep", "cat:dog:pig", "--grid", "3", "-m", twin_model, "-o", site / "tri", "-q"])
    page = site / "gallery.html"
    assert run_cli(["gallery", site, "-o", page, "-q"]).code == 0
    text = page.read_text()
    strips = re.findall(r'<div class="sweep" data-count="(\d+)">.*?</div></div>', text, re.S)
    assert strips == ["4", "6"]  # the triangle's corners are the line's ends too: every token still shows
    first = re.search(r'<div class="sweep" data-count="4">(.*?)</div></div>', text, re.S).group(1)
    assert re.findall(r"<figcaption>(.*?)</figcaption>", first) == [
        "cat 1.00",
        "cat 0.67 dog 0.33",
        "dog 0.67 cat 0.33",
        "dog 1.00",
    ]
    body = _body(_browse(page.as_uri(), "--dump-dom").stdout)
    assert body["sweeps"] == "2" and body["errors"] == "" and body["images-broken"] == "0"
    screenshot(page, "gallery-sweep-screenshot.png", "1400,900", tmp_path)

"""`distok gallery`: one self-contained page, checked as HTML and in a real browser (headless Chromium)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from distok_cli.files import checkpoint, tokenfile

from .conftest import ROOT, assert_one_line_error, make_token, run_cli

PROMPTS = ["a photo of a <>", "a watercolor of a <>"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, kandinsky):
    """tokens/ (a distribution token with an estimate, a cauchy and a gaussian latent token), renders/ of
    the first two (2 prompts × 2 seeds on the tiny twins), and a model whose class `pig` is the first token."""
    root = tmp_path_factory.mktemp("site")
    space = kandinsky.text.space
    rng = np.random.default_rng(3)
    vecs = [(0.02 * rng.standard_normal(768)).astype(np.float32) for _ in range(3)]
    est = {"estimator": "text:twin", "distribution": {"pig": 0.5, "sheep": 0.3, "cat": 0.2}, "kl": 0.125, "js": 0.03}
    toks = {
        "pig.distok": make_token(
            space,
            vecs[0],
            source={"kind": "distribution", "distribution": {"pig": 0.7, "sheep": 0.3}},
            estimate=est,
            title="pig70-sheep30",
            model={"hash": "sha256:" + "1" * 64, "recipe": "tiny", "step": 5},
        ),
        "c.distok": make_token(
            space,
            vecs[1],
            source={"kind": "latent", "prior": "cauchy", "scale": 1.0, "seed": 0, "index": 0, "z": [0.5, -1.0]},
            title="cauchy-s0-i0",
        ),
        "g.distok": make_token(
            space,
            vecs[2],
            source={"kind": "latent", "prior": "gaussian", "seed": 0, "index": 1, "z": [0.1, 0.2]},
            title="gaussian-s0-i1",
        ),
    }
    for name, tok in toks.items():
        tokenfile.save(tok, root / "tokens" / name)
    r = run_cli(
        [
            "render",
            root / "tokens" / "pig.distok",
            root / "tokens" / "c.distok",
            *PROMPTS,
            "--seeds",
            "0-1",
            "-r",
            "tiny",
            "-o",
            root / "renders",
            "-q",
        ]
    )
    assert r.code == 0, r.err
    classes = ["pig", "sheep", "cat"]
    emb = np.stack([vecs[0], 0.02 * rng.standard_normal(768), 0.02 * rng.standard_normal(768)]).astype(np.float32)
    d, h, w = 768, 4, 2
    tensors = {
        k: np.zeros(s, np.float32)
        for k, s in {
            "E_dis.0.weight": (h, d),
            "E_dis.0.bias": (h,),
            "E_dis.2.weight": (w, h),
            "E_dis.2.bias": (w,),
            "D_tok.0.weight": (h, w),
            "D_tok.0.bias": (h,),
            "D_tok.2.weight": (d, h),
            "D_tok.2.bias": (d,),
        }.items()
    }
    tensors["class_embeddings"] = emb
    config = {"classes": classes, "dim": d, "hidden": h, "latent_dim": w, "token_space": space.to_json()}
    checkpoint.Checkpoint(tensors, config).save(root / "model.safetensors")
    page = root / "gallery.html"
    r = run_cli(["gallery", root / "tokens", root / "renders", "-m", root / "model.safetensors", "-o", page])
    assert r.code == 0, r.err
    assert r.out == f"{page}\n"
    assert r.err.splitlines()[-1] == "distok: 3 tokens, 8 renders"
    return root, page


def test_the_page_holds_everything_and_needs_nothing_else(site, tmp_path):
    root, page = site
    text = page.read_text()
    # Self-contained: no network, no other file needed to display it (full images are links).
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text) and "@import" not in text and "<link" not in text
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', text)) == 8
    assert text.count('<a href="renders/') == 8
    # Per token: renders by prompt and seed, bars, KL/JS, nearest classes, lineage, commands.
    assert (
        text.count("<figcaption>seed 0</figcaption>") == 4
        and text.count('<div class="ptext">a watercolor of a &lt;&gt;</div>') == 2
    )
    assert 'style="width:70.0%"' in text and 'style="width:50.0%"' in text  # source pig 0.7, estimate pig 0.5
    assert "KL 0.125 · JS 0.030" in text
    assert 'pig <span class="muted">1.000</span>' in text  # the model's class `pig` is the first token itself
    assert "latent z (2 dims) from a cauchy prior, scale 1, seed 0, index 0" in text
    assert "model <code>sha256:111111111111</code>, recipe tiny, step 5" in text
    assert (
        "distok render tokens/pig.distok &#x27;a photo of a &lt;&gt;&#x27; &#x27;a watercolor of a &lt;&gt;&#x27; "
        "--seeds 0,1 -r tiny"
    ) in text
    # the tokens are the twin's: ComfyUI would refuse them, diffusers loads the twin, so the page offers that
    assert "distok export tokens/c.distok --to diffusers" in text and "--to comfyui" not in text
    assert run_cli(["export", root / "tokens" / "c.distok", "--to", "diffusers", "-o", tmp_path, "-q"]).code == 0
    assert 'data-prior="cauchy"' in text and 'data-classes="pig sheep"' in text


def test_gallery_refuses_bad_targets_and_inputs(site, tmp_path):
    root, page = site
    assert_one_line_error(
        run_cli(["gallery", root / "tokens", "-o", page]), 2, f"{page} exists (use --overwrite to replace)"
    )
    assert_one_line_error(
        run_cli(["gallery", root / "tokens", "-o", tmp_path / "g.txt"]), 2, "a gallery is an .html file"
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run_cli(["gallery", tmp_path / "empty", "-o", tmp_path / "g.html"]), 2, "no token files or rendered PNGs found"
    )
    (tmp_path / "bad.distok").write_bytes(b"nope")
    assert_one_line_error(run_cli(["gallery", tmp_path / "bad.distok", "-o", tmp_path / "g.html"]), 2, "bad.distok")
    assert_one_line_error(
        run_cli(["gallery", root / "tokens", "--thumb", "8", "-o", tmp_path / "g.html"]),
        2,
        "--thumb must be between 32",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.distok", "empty"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def _browse(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def screenshot(page: Path, name: str, size: str, tmp_path: Path) -> Path:
    """A headless-Chromium screenshot of ``page`` (``size`` "W,H"), also kept as .pytest_cache/distok/NAME
    for a person to look at."""
    shot = tmp_path / name
    r = _browse(page.as_uri(), f"--screenshot={shot}", f"--window-size={size}")
    assert r.returncode == 0 and shot.read_bytes().startswith(b"\x89PNG"), r.stderr[-300:]
    keep = ROOT / ".pytest_cache" / "distok"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / name)
    return shot


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag))


def test_the_page_in_headless_chromium(site, tmp_path):
    """Chromium loads the page from disk: every image decodes, no script error or console message, the
    filters work, and a screenshot is taken (kept in .pytest_cache/distok/ for a person to look at)."""
    root, page = site
    r = _browse(page.as_uri(), "--dump-dom")
    assert r.returncode == 0, r.stderr[-500:]
    body = _body(r.stdout)
    assert body["tokens"] == "3" and body["images"] == "8"
    assert body["images-loaded"] == "8" and body["images-broken"] == "0" and body["errors"] == ""
    assert ":CONSOLE" not in r.stderr, r.stderr
    assert body["shown"] == "pig70-sheep30,cauchy-s0-i0,gaussian-s0-i1"  # KL low first; no KL last
    assert _body(_browse(page.as_uri() + "#prior=cauchy", "--dump-dom").stdout)["shown"] == "cauchy-s0-i0"
    assert _body(_browse(page.as_uri() + "#cls=sheep", "--dump-dom").stdout)["shown"] == "pig70-sheep30"
    assert (
        _body(_browse(page.as_uri() + "#sort=title", "--dump-dom").stdout)["shown"]
        == "cauchy-s0-i0,gaussian-s0-i1,pig70-sheep30"
    )
    shot = screenshot(page, "gallery-screenshot.png", "1400,1600", tmp_path)
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1400, 1600)
        assert len(set(im.convert("RGB").resize((64, 64)).getdata())) > 50  # not a blank page


def test_the_browser_check_sees_a_script_error(tmp_path):
    """The harness itself: a page whose script throws is caught by the same checks."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><html><body data-x=1><script>nope();</script></body></html>")
    r = _browse(bad.as_uri(), "--dump-dom")
    assert ":CONSOLE" in r.stderr and "nope is not defined" in r.stderr


def test_the_demo_gallery_is_listed_in_the_readme():
    assert "gallery.html" in (ROOT / "README.md").read_text()
    assert Path(ROOT / "docs" / "cli.md").read_text().count("## `distok gallery`") == 1


PAYLOADS = [
    '<script>document.title="PWNED-1";console.log("PWNED-1")</script>',
    "\"><img src=x onerror=\"document.title='PWNED-2';console.log('PWNED-2')\">",
    "';console.log('PWNED-3');'",
    "$(touch PWNED-4)`touch PWNED-5`; touch PWNED-6 #",
]


def test_hostile_strings_show_as_text_and_run_nowhere(tmp_path, kandinsky):
    """Every string field a gallery shows (class names, titles, prompts, recipe names, export names, file
    names) holds script, markup and shell payloads: in Chromium no script runs and the payloads show as
    text; every command line on the page, run in bash, runs none of them."""
    import html as html_mod

    space = kandinsky.text.space
    rng = np.random.default_rng(5)
    root = tmp_path / "site"
    names = []
    for i, bad in enumerate(PAYLOADS):
        tok = make_token(
            space,
            (0.02 * rng.standard_normal(768)).astype(np.float32),
            source={"kind": "distribution", "distribution": {bad: 0.6, "cat": 0.4}},
            estimate={"estimator": bad, "distribution": {bad: 1.0}, "kl": 0.5, "js": 0.1},
            title=bad,
            model={"hash": "sha256:" + "2" * 64, "recipe": bad, "step": 1},
            exported={
                "target": "comfyui",
                "name": f"x{i}-export",
                "dtype": "float32",
                "source_id": "sha256:" + "3" * 64,
            },
        )
        name = f"{bad.replace('/', '_')}.distok"
        tokenfile.save(tok, root / "tokens" / name)
        names.append(name)
    prompts = [f"{bad} of a <>" for bad in PAYLOADS[:2]]
    r = run_cli(["render", root / "tokens" / names[0], *prompts, "-r", "tiny", "-o", root / "renders", "-q"])
    assert r.code == 0, r.err
    # A model whose class names are the payloads too (the page lists each token's nearest classes).
    d, h, w = 768, 4, 2
    tensors = {
        k: np.zeros(shape, np.float32)
        for k, shape in {
            "E_dis.0.weight": (h, d),
            "E_dis.0.bias": (h,),
            "E_dis.2.weight": (w, h),
            "E_dis.2.bias": (w,),
            "D_tok.0.weight": (h, w),
            "D_tok.0.bias": (h,),
            "D_tok.2.weight": (d, h),
            "D_tok.2.bias": (d,),
        }.items()
    }
    tensors["class_embeddings"] = (0.02 * rng.standard_normal((len(PAYLOADS), d))).astype(np.float32)
    checkpoint.Checkpoint(
        tensors,
        {
            "classes": PAYLOADS,
            "dim": d,
            "hidden": h,
            "latent_dim": w,
            "recipe": PAYLOADS[0],
            "token_space": space.to_json(),
        },
    ).save(root / "model.safetensors")
    page = root / "gallery.html"
    r = run_cli(["gallery", root / "tokens", root / "renders", "-m", root / "model.safetensors", "-o", page, "-q"])
    assert r.code == 0, r.err
    assert page.read_text().count("nearest") >= len(PAYLOADS)
    r = _browse(page.as_uri(), "--dump-dom")
    assert r.returncode == 0, r.stderr[-500:]
    assert "PWNED" not in r.stderr and ":CONSOLE" not in r.stderr, r.stderr[-2000:]  # no script ran, no console message
    assert "<title>PWNED" not in r.stdout and _body(r.stdout)["errors"] == ""
    shot = ROOT / ".pytest_cache" / "distok" / "gallery-hostile.png"  # for a person to look at
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert _browse(page.as_uri(), f"--screenshot={shot}", "--window-size=1400,1400").returncode == 0
    dom_text = html_mod.unescape(re.sub(r"<[^>]+>", " ", r.stdout))
    for bad in PAYLOADS:
        assert bad in dom_text or bad.strip() in dom_text, bad  # shown as text
    assert "<img src=x" not in r.stdout and "<script>document" not in r.stdout  # never markup
    # Every command line shown, run in bash against a stub `distok` that prints its arguments.
    lines = [html_mod.unescape(m) for m in re.findall(r'<pre class="cmd">(distok [^<]*)</pre>', page.read_text())]
    assert len(lines) >= 3 * len(PAYLOADS)
    work = tmp_path / "shell"
    work.mkdir()
    for line in lines:
        out = subprocess.run(
            ["bash", "-c", f"distok() {{ printf '%s\\n' \"$@\"; }}; {line}"], cwd=root, capture_output=True, text=True
        )
        assert out.returncode == 0, (line, out.stderr)
        assert not list(root.glob("PWNED*")) and not list(work.glob("PWNED*")), line
        args = out.stdout.splitlines()
        assert (root / args[1]).is_file(), (line, args)  # the token's own path arrives as one argument


def test_every_line_the_page_offers_for_a_minilm_token_runs(tmp_path, monkeypatch):
    """A MiniLM token (384-d) has no renderer: its card offers no `distok render` line, and each line it does
    offer runs as shown from the page's folder, exit 0."""
    import html
    import shlex

    from distok_cli.files.space import TokenSpace

    space = TokenSpace("minilm:all-MiniLM-L6-v2", 384, "fp16-sha256:" + "2" * 64, "")
    tok = make_token(
        space,
        0.02 * np.random.default_rng(0).standard_normal(384),
        source={"kind": "distribution", "distribution": {"owl": 0.5, "cat": 0.5}},
        title="cat50-owl50",
    )
    tokenfile.save(tok, tmp_path / "tokens" / "owl-cat.distok")
    assert run_cli(["gallery", tmp_path / "tokens", "-o", tmp_path / "gallery.html", "-q"]).code == 0
    page = (tmp_path / "gallery.html").read_text()
    lines = [html.unescape(x) for x in re.findall(r'<pre class="cmd">(.*?)</pre>', page)]
    assert lines and not [x for x in lines if x.startswith("distok render")]
    assert "distok inspect tokens/owl-cat.distok" in lines
    monkeypatch.chdir(tmp_path)
    for line in lines:
        r = run_cli(shlex.split(line)[1:])
        assert r.code == 0, (line, r.err)
    assert_one_line_error(
        run_cli(["render", "tokens/owl-cat.distok", "a photo of a <>", "--seeds", "0"]), 2, "no renderer reads it"
    )  # what the page used to offer


def check_gallery_lines(run, tokens_dir, recipe, space_text, shot, tmp_path, monkeypatch):
    """The gallery over a twin's tokens and one's renders: the card shows the token's space (by its parts),
    offers exactly render, export --to diffusers and inspect for it, each of which runs as shown from the
    page's folder (exit 0), and Chromium loads the page; a screenshot is kept for a person to look at."""
    import html as html_mod
    import shlex

    site = tmp_path / "site"
    shutil.copytree(tokens_dir, site / "tokens")
    token = site / "tokens" / "pig-sheep.distok"
    r = run_cli(["render", token, "a photo of a <>", "--seeds", "0-1", "-o", site / "renders", "-q"])
    assert r.code == 0, r.err
    page = site / "gallery.html"
    g = run_cli(["gallery", site / "tokens", site / "renders", "-m", run, "-o", page])
    assert g.code == 0, g.err
    text = page.read_text()
    assert f"space {space_text}" in text
    commands = [html_mod.unescape(c) for c in re.findall(r'<pre class="cmd">(.*?)</pre>', text)]
    shown = [c for c in commands if "pig-sheep.distok" in c]
    assert shown == [
        f"distok render tokens/pig-sheep.distok 'a photo of a <>' --seeds 0,1 -r {recipe}",
        "distok export tokens/pig-sheep.distok --to diffusers",
        "distok inspect tokens/pig-sheep.distok",
    ]
    monkeypatch.chdir(site)  # the page's command lines are relative to its folder
    for i, line in enumerate(commands):  # every line on the page, every card's
        args = shlex.split(line)[1:]
        extra = ["-o", tmp_path / f"again-{i}", "-q"] if args[0] in ("render", "export") else []
        done = run_cli([*args, *extra])
        assert done.code == 0, (line, done.err[-300:])
    body = _body(_browse(page.as_uri(), "--dump-dom").stdout)
    n_tokens = len(list((site / "tokens").glob("*.distok")))
    assert body["tokens"] == str(n_tokens) and body["images-loaded"] == "2" and body["errors"] == ""
    screenshot(page, shot, "1400,1200", tmp_path)


def test_every_line_the_page_offers_for_a_clip_twin_token_runs(run, tmp_path, monkeypatch):
    """The third space (the tiny CLIP twin, one 768-d vector; MiniLM and the two-part twins have their own
    tests): the card offers render, export --to diffusers and inspect, and each runs as shown."""
    folder = tmp_path / "made"
    r = run_cli(["encode", "-m", run, "pig:0.6,sheep:0.4", "-o", folder / "pig-sheep.distok", "-q", "--refine", "0"])
    assert r.code == 0, r.err
    check_gallery_lines(
        run, folder, "tiny", "twin:kandinsky21-prior (768-d)", "gallery-clip-twin-screenshot.png", tmp_path, monkeypatch
    )

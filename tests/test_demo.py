"""`distok demo` on the tiny recipe."""

from __future__ import annotations

from distok_cli.files import tokenfile

from .conftest import assert_one_line_error, run_cli


def test_demo_on_the_tiny_recipe(tmp_path, kandinsky):
    out = tmp_path / "demo"
    r = run_cli(["demo", "-o", out, "--recipe", "tiny", "--steps", "6"])
    assert r.code == 0, r.err
    assert r.out.strip() == str(out)
    assert "images are noise" in r.err and "distok train --recipe kandinsky21-animals" in r.err
    assert (out / "contact-sheet.png").is_file() and (out / "run" / "model.safetensors").is_file()
    tokens = sorted(p.name for p in (out / "tokens").glob("*.distok"))
    assert tokens == [
        "cauchy-s0-0000.distok",
        "cauchy-s0-0001.distok",
        "gaussian-s0-0000.distok",
        "gaussian-s0-0001.distok",
        "owl-cat.distok",
        "pig-sheep-snake.distok",
    ]
    assert tokenfile.load(out / "tokens" / "owl-cat.distok").estimate["kl"] >= 0
    page = (out / "gallery.html").read_text()
    assert 'data-tokens="6" data-images="12"' in page  # every token, rendered with 2 prompts
    assert "gallery.html         every token" in r.err
    # every "Try:" line runs as printed, exit 0 (the last line, the real thing, needs a GPU and the weights)
    import shlex

    tries = r.err.split("Try:\n", 1)[1].split("The real thing", 1)[0].splitlines()
    assert [t.split()[1] for t in tries] == ["inspect", "diff", "sample", "render"]
    for line in tries:
        done = run_cli([*shlex.split(line)[1:], "-q"])
        assert done.code == 0, (line, done.err[-300:])
    assert_one_line_error(run_cli(["demo", "-o", out, "--recipe", "tiny"]), 2, "exists and is not empty")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    assert_one_line_error(run_cli(["demo", "-o", tmp_path / "mine", "--overwrite"]), 2, "was not made by distok demo")

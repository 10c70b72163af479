"""The command lines the README shows after `distok demo` work as typed, in a real shell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- as-typed -->\s*```sh\n(.*?)```", text, re.S)
    assert block, "README lacks the <!-- as-typed --> block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_command_lines_work_as_typed_after_the_demo(tmp_path, kandinsky):
    lines = readme_lines()
    assert lines == [
        "distok demo",
        "distok sample --n 50 --prior cauchy",
        'distok render distok-demo/run-tiny/tokens/pig-sheep-snake.distok "a watercolor of a <>"',
        'distok sample --n 8 | distok render - "a plush toy of a <>"',
        "distok gallery tokens renders -o gallery.html",
    ]
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("DISTOK_MODEL", None)

    def sh(line: str) -> subprocess.CompletedProcess:
        r = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (line, r.stderr[-2000:])
        return r

    r = sh(lines[0] + " --steps 20")  # the demo itself, shortened: what follows is typed exactly as shown
    assert re.search(r"tokens vs no model: KL \d+\.\d\d vs \d+\.\d\d \([+-]\d+ %\) on 20 unseen distributions x 6 unseen styles", r.stderr)
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

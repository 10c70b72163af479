from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# No test may reach the network: the Hub client fails fast instead.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("DISTOK_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "distok"))
os.environ.pop("DISTOK_DEBUG", None)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "formats" / "examples"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(args: list[str], stdin: str = "") -> Result:
    """Run ``distok`` in-process, with captured stdio, exactly as the console script does."""
    from distok_cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        code = main([str(a) for a in args])
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(code, out.getvalue(), err.getvalue())


def assert_one_line_error(r: Result, code: int = 2, contains: str | None = None) -> None:
    assert r.code == code, (r.code, r.out, r.err)
    assert r.err.startswith("distok: error: "), r.err
    assert r.err.endswith("\n") and r.err.count("\n") == 1, r.err
    assert "Traceback" not in r.err
    if contains is not None:
        assert contains in r.err, r.err


@pytest.fixture
def cli():
    return run_cli

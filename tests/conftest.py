from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from distok_cli.files import recipes

# No test may reach the network: the Hub client fails fast instead.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("DISTOK_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "distok"))
os.environ.pop("DISTOK_DEBUG", None)
os.environ.pop("DISTOK_MODEL", None)
# `distok train`/`demo` set a default model in the user's config folder: never the real one in tests.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="distok-xdg-")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "formats" / "examples"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(args: list[str], stdin: str = "") -> Result:
    """Run ``distok`` in-process, with captured stdio, exactly as the console script does."""
    from distok_cli.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        code = main([str(a) for a in args])
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(code, out.getvalue(), err.getvalue())


def assert_one_line_error(r: Result, code: int = 2, contains: str | None = None) -> None:
    """The error is one line, the last on stderr (progress or notices may precede it), with no traceback."""
    assert r.code == code, (r.code, r.out, r.err)
    lines = r.err.splitlines()
    assert lines and lines[-1].startswith("distok: error: ") and r.err.endswith("\n"), r.err
    assert sum(line.startswith("distok: error: ") for line in lines) == 1, r.err
    assert "Traceback" not in r.err
    if contains is not None:
        assert contains in lines[-1], r.err


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_recipe():

    return recipes.load("tiny")


# The paper's objective on the tiny recipe, fast: the step-by-hand tests check its steps (distok's own steps:
# tests/test_matching.py).
FAST = [
    "estimator.kind=text",
    "train.estimate_every=5",
    "train.estimate_n=4",
    "train.objective=paper",
    "train.residual=false",
    "train.fusion_input=sum",
    "train.reweight=false",
]


@pytest.fixture(scope="session")
def run(tmp_path_factory, kandinsky):
    """A tiny run (text-side estimator: no rendering), trained once for the session."""
    path = tmp_path_factory.mktemp("runs") / "tiny"
    r = run_cli(["train", "-o", path, "--steps", "12", "-q", *sum((["--set", s] for s in FAST), [])])
    assert r.code == 0, r.err
    assert r.out.strip() == str(path)
    return path


@pytest.fixture(scope="session")
def kandinsky(tiny_recipe):
    """The tiny Kandinsky 2.1 twin, loaded once per test session through the real from_pretrained path."""
    from distok_cli.backends.registry import make_renderer

    return make_renderer(tiny_recipe.render, "cpu")


@pytest.fixture(scope="session")
def sd(tiny_recipe):
    from distok_cli.backends.registry import make_renderer

    return make_renderer(recipes.override(tiny_recipe, ["render.backend=sd15"]).render, "cpu")


@pytest.fixture(scope="session")
def blip(tiny_recipe):
    from distok_cli.backends.blip import make_estimator

    return make_estimator(tiny_recipe.estimator, "cpu")


@pytest.fixture(scope="session")
def space(kandinsky):
    return kandinsky.text.space


def make_token(space, vec, **kw):
    import numpy as np

    from distok_cli.files.tokenfile import Token

    kw.setdefault("source", {"kind": "distribution", "distribution": {"cat": 0.6, "dog": 0.4}})
    return Token(vector=np.asarray(vec, np.float32), space=space, **kw)


def break_step(monkeypatch, at: int, action) -> None:
    """Patch ``Trainer.train_step`` so that its ``at``-th call first runs ``action()`` (raise
    KeyboardInterrupt, send a signal...), then the real step. ``monkeypatch.undo()`` restores it."""
    from distok_cli.method import trainer

    calls = {"n": 0}
    real = trainer.Trainer.train_step

    def step(self):
        calls["n"] += 1
        if calls["n"] == at:
            action()
        return real(self)

    monkeypatch.setattr(trainer.Trainer, "train_step", step)


def assert_same_run(a, b) -> None:
    """Checkpoint, optimizer/RNG state and pool byte for byte; the log row for row, but for its wall-clock
    "seconds" (time since that process started, which no rerun can reproduce)."""
    for name in ("model.safetensors", "state.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    rows = [
        [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in (d / "log.jsonl").read_text().splitlines()]
        for d in (a, b)
    ]
    assert rows[0] == rows[1]
    pa, pb = (sorted((d / "pool").iterdir()) if (d / "pool").is_dir() else [] for d in (a, b))
    assert [p.name for p in pa] == [p.name for p in pb]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(pa, pb))


def ctrl_c() -> None:
    raise KeyboardInterrupt


def write_model(
    path,
    space: dict,
    classes: list[str],
    recipe: str = "tiny",
    seed: int = 1,
    hidden: int = 8,
    latent: int = 4,
    class_embeddings=None,
):
    """A random residual DisTok checkpoint in ``space`` (numpy, no training): what `distok train` writes, as
    far as encode, sample and sweep can tell. Returns the path."""
    import numpy as np

    from distok_cli.files import checkpoint

    rng = np.random.default_rng(seed)
    d, h, w = space["dim"], hidden, latent
    shapes = {
        "E_dis.0.weight": (h, d),
        "E_dis.0.bias": (h,),
        "E_dis.2.weight": (w, h),
        "E_dis.2.bias": (w,),
        "D_tok.0.weight": (h, w),
        "D_tok.0.bias": (h,),
        "D_tok.2.weight": (d, h),
        "D_tok.2.bias": (d,),
        "skip.weight": (d, w),
        "skip.bias": (d,),
        "class_embeddings": (len(classes), d),
    }
    tensors = {k: (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    tensors["E_dis.2.weight"] *= 20  # latents of order one, so that the decoder is not linear over a path
    if class_embeddings is not None:
        tensors["class_embeddings"] = np.asarray(class_embeddings, np.float32)
    config = {
        "classes": classes,
        "dim": d,
        "hidden": h,
        "latent_dim": w,
        "activation": "gelu_tanh",
        "residual": True,
        "token_space": space,
        "fusion_input": "mean",
        "recipe": recipe,
        "step": 1,
    }
    checkpoint.Checkpoint(tensors, config).save(path)
    return path

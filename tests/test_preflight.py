"""Every check that can be made from the tokens, the recipe and the flags runs before any model loads."""

from __future__ import annotations

import numpy as np
import pytest

from distok_cli.files import tokenfile
from distok_cli.files.space import TokenSpace
from distok_cli.files.tokenfile import Token

from .conftest import assert_one_line_error, make_token, run_cli


@pytest.fixture
def no_models(monkeypatch):
    """Any attempt to load a renderer or an estimator fails the test."""
    from distok_cli.backends import registry, token_estimators

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(registry, "make_renderer", boom)
    monkeypatch.setattr(token_estimators, "make_token_estimator", boom)


@pytest.fixture
def twin_token(space, tmp_path):
    return tokenfile.save(
        make_token(space, np.random.default_rng(0).standard_normal(768) * 0.05), tmp_path / "t.distok"
    )


def test_a_token_no_renderer_reads_is_refused_naming_its_space_and_the_recipes(tmp_path, no_models):
    space = TokenSpace("minilm:all-MiniLM-L6-v2", 384, "fp16-sha256:" + "3" * 64)
    tok = Token(
        vector=np.zeros(384, np.float32) + 0.01,
        space=space,
        model={"hash": "sha256:" + "0" * 64, "recipe": "minilm-animals", "step": 1},
        source={"kind": "distribution", "distribution": {"owl": 0.5, "cat": 0.5}},
    )
    p = tokenfile.save(tok, tmp_path / "owl-cat.distok")
    r = run_cli(["render", p, "a watercolor of a <>", "-o", tmp_path / "out"])
    assert_one_line_error(
        r,
        2,
        (
            f"{p} is a token of minilm:all-MiniLM-L6-v2's 384-d token space; no renderer reads it (rendering needs a "
            "768-d CLIP ViT-L/14 token or a token with parts: train with one of the recipes flux-animals, flux-tiny, kandinsky21-animals, sd15-animals, "
            "sdxl-animals, sdxl-tiny, tiny, "
            "e.g. `distok train -r tiny -o runs/tiny`, and encode or sample with that run)"
        ),
    )
    assert "loading" not in r.err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a photo of a " + "x " * 80 + "<>"], "is too long: the token falls past the text encoder's context"),
        (["a photo of a <>", "--seeds", "0-10000"], "1 tokens × 1 prompts × 10001 seeds is more than 10000 images"),
        (
            ["a photo of a <>", "--seeds", "18446744073709551616"],
            "is larger than the largest seed, 9223372036854775807",
        ),
        (
            ["a photo of a <>", "--seed", "18446744073709551616"],
            "Invalid value for '--seed': Input should be less than or equal to 9223372036854775807",
        ),
        (["a photo of a <>", "-o", "{tmp}/t.distok"], "exists and is not a folder"),
    ],
)
def test_render_refusals_come_before_any_model_loads(twin_token, tmp_path, no_models, kandinsky, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = run_cli(["render", twin_token, *args])
    assert_one_line_error(r, 2, message)
    assert "loading" not in r.err

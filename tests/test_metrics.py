"""``distok eval --metric``: the paper's image metrics over renders of both arms, on the tiny twins.

CLIPScore and PickScore run for real on a tiny random CLIP twin (``twin:clip``, the stand-in for CLIP ViT-L/14
and PickScore v1). VQAScore (t2v-metrics) and ImageReward (image-reward) cannot be installed beside
transformers 5, so no twin can stand in for them: their adapters are checked here against stand-in modules
that follow each library's documented call and output shape (``VQAScore(model=...)(images=[paths],
texts=[texts])`` → an [images × texts] tensor; ``ImageReward.load(name).score(prompt, [images])`` → a float
for one image), and their missing-package lines are checked as a user without them sees them.
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import numpy as np
import pytest

from .conftest import assert_one_line_error, run_cli

DISTS = '[{"pig": 0.5, "sheep": 0.5}, {"cat": 0.6, "dog": 0.3, "owl": 0.1}]'


@pytest.fixture(scope="module")
def metric_run(run, tmp_path_factory):
    """The session's tiny run (trained with the text estimator; eval reads it with BLIP on renders) and a
    file of two distributions beside it."""
    folder = tmp_path_factory.mktemp("metrics")
    (folder / "d.json").write_text(DISTS)
    return run, folder / "d.json"


def _eval(metric_run, metric, out, *extra):
    """eval with BLIP on renders, on 2 distributions, 1 render per token, a fixed T (no calibration renders)."""
    run, dists = metric_run
    return run_cli(
        ["eval", run, "--estimator", "blip-itm", "--styles", "none", "--distributions", dists, "--metric", metric]
        + ["-o", out, "-q", "--set", "estimator.images=1", "--set", "eval.temperature=0.1", *extra]
    )


def _images():
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")) for _ in range(2)]


def test_clipscore_and_pickscore_are_their_formulas_computed_by_hand():
    """CLIPScore = 100 · max(cos, 0) and PickScore = exp(logit_scale) · cos, cos of the projected, normalised
    image and text features of the same CLIP (recomputed here from the model's own towers)."""
    import torch

    from distok_cli.backends.metrics import ClipScore, PickScore

    imgs, texts = _images(), ["a photo of a pig sheep", "a photo of a cat"]
    clip = ClipScore("twin:clip", "cpu")
    m, proc = clip.model, clip.processor
    with torch.no_grad():
        pix = proc(images=imgs, return_tensors="pt")
        txt = proc(text=texts, padding=True, return_tensors="pt")
        vis = m.visual_projection(m.vision_model(**pix).pooler_output)
        tex = m.text_projection(m.text_model(**txt).pooler_output)
    cos = (torch.nn.functional.normalize(vis, dim=-1) * torch.nn.functional.normalize(tex, dim=-1)).sum(-1)
    assert clip.scores(imgs, texts) == pytest.approx((100 * cos.clamp(min=0)).tolist(), abs=1e-4)
    pick = PickScore("twin:clip", "twin:clip", "cpu")
    assert pick.scores(imgs, texts) == pytest.approx((m.logit_scale.exp() * cos).tolist(), abs=1e-4)


def test_eval_metric_scores_both_arms_and_reports_blip_kl_beside(metric_run, tmp_path):
    r = _eval(metric_run, "clipscore,pickscore,blip-kl", tmp_path / "e", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    rep = json.loads((tmp_path / "e" / "eval.json").read_text())
    m = rep["metrics"]
    assert summary["metrics"]["arms"] == m["arms"] and "items" not in summary["metrics"]
    assert set(m["arms"]) == {"distok", "raw_mix", "plain", "weighted"}
    assert set(m["arms"]["distok"]) == {"clipscore", "pickscore"}
    assert [it["text"] for it in m["items"]] == ["a photo of a pig sheep", "a photo of a cat dog owl"]
    assert m["items"][1]["prompts"] == {
        "plain": "a photo of a cat dog <>",  # <> is owl, typed through its own embedding t_owl
        "weighted": "a photo of a 60% cat, 30% dog, 10% <>",
    }
    for arm in m["arms"]:  # an arm's figure is the mean over its distributions
        for k in ("clipscore", "pickscore"):
            assert m["arms"][arm][k] == pytest.approx(np.mean([it[arm][k] for it in m["items"]]))
        assert all(0 <= it[arm]["clipscore"] <= 100 for it in m["items"])
    md = (tmp_path / "e" / "eval.md").read_text()
    row = f"| DisTok | {m['arms']['distok']['clipscore']:.4f} | {m['arms']['distok']['pickscore']:.4f} | {rep['kl']:.4f} |"
    assert row in md and "| arm | clipscore | pickscore | blip-kl ↓ |" in md
    assert f"| plain prompt | {m['arms']['plain']['clipscore']:.4f} | {m['arms']['plain']['pickscore']:.4f} | — |" in md


@pytest.mark.slow  # the default suite runs --metric already; this adds a second model (CI runs slow tests too)
def test_a_second_clip_is_reported_beside_the_first(metric_run, tmp_path):
    import shutil

    from distok_cli.backends.refs import resolve

    second = tmp_path / "other-clip"
    shutil.copytree(resolve("twin:clip"), second)
    r = _eval(metric_run, "clipscore", tmp_path / "e", "--set", f'eval.clipscore_models=["twin:clip", "{second}"]')
    assert r.code == 0, r.err
    assert r.code == 0, r.err
    arms = json.loads((tmp_path / "e" / "eval.json").read_text())["metrics"]["arms"]
    assert list(arms["distok"]) == ["clipscore", f"clipscore:{second}"]
    assert arms["distok"]["clipscore"] == pytest.approx(arms["distok"][f"clipscore:{second}"])  # same weights


@pytest.mark.parametrize(
    "metric, line",
    [
        ("vqascore", "--metric vqascore needs the t2v_metrics package (pip install t2v-metrics"),
        (
            "imagereward",
            "--metric imagereward needs the ImageReward package (pip install image-reward in an environment",
        ),
    ],
)
def test_a_metric_whose_package_is_missing_says_what_to_install(metric_run, tmp_path, metric, line):
    assert metric not in sys.modules
    r = _eval(metric_run, f"clipscore,{metric}", tmp_path / "e")
    assert_one_line_error(r, 1, line)
    assert not (tmp_path / "e").exists()  # refused before any model loads or any file is written


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["--metric", "clip"],
            "--metric 'clip': give one or more of clipscore, pickscore, vqascore, imagereward, blip-kl",
        ),
        (["--metric", "clipscore,clipscore"], "comma-separated, each once"),
        (["--metric", "clipscore", "--estimator", "text"], "--metric scores renders: it needs an image estimator"),
    ],
)
def test_bad_metric_requests_exit_2(metric_run, tmp_path, args, line):
    r = run_cli(["eval", metric_run[0], "--styles", "none", "-o", tmp_path / "e", *args])
    assert_one_line_error(r, 2, line)


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


@pytest.mark.slow  # stand-ins, not models: a third eval run, kept out of the default suite's budget
def test_vqascore_and_imagereward_adapters_follow_the_documented_calls(metric_run, tmp_path, monkeypatch):
    """Stand-ins with each library's documented call and output shape (not the real models): VQAScore gets
    image files and one text per image and returns [images × texts]; ImageReward gets the prompt and a
    list of PIL images and returns a float for one image. eval keeps the one score of each pair."""
    import torch
    from PIL import Image

    calls = {"vqa": [], "ir": []}

    class StandInVQAScore:
        def __init__(self, model, device="cuda"):
            calls["vqa_model"] = (model, device)

        def __call__(self, images, texts):
            assert all(isinstance(p, str) and Image.open(p).size for p in images)
            calls["vqa"].append((len(images), list(texts)))
            return torch.full((len(images), len(texts)), 0.25)

    class StandInReward:
        def score(self, prompt, images):
            assert isinstance(prompt, str) and all(hasattr(i, "convert") for i in images)
            calls["ir"].append(prompt)
            return 1.5 if len(images) == 1 else [1.5] * len(images)

    monkeypatch.setitem(sys.modules, "t2v_metrics", _module("t2v_metrics", VQAScore=StandInVQAScore))
    monkeypatch.setitem(
        sys.modules, "ImageReward", _module("ImageReward", load=lambda name, device="cuda": StandInReward())
    )
    r = _eval(metric_run, "vqascore,imagereward", tmp_path / "e")
    assert r.code == 0, r.err
    arms = json.loads((tmp_path / "e" / "eval.json").read_text())["metrics"]["arms"]
    assert arms == {a: {"vqascore": 0.25, "imagereward": 1.5} for a in ("distok", "raw_mix", "plain", "weighted")}
    assert calls["vqa_model"] == ("clip-flant5-xxl", "cpu")
    assert {n for n, _ in calls["vqa"]} == {1} and calls["vqa"][0][1] == ["a photo of a pig sheep"]
    assert (
        calls["ir"][0] == "a photo of a pig sheep" and len(calls["ir"]) == 4 * 2
    )  # 4 arms × 2 distributions, one image each

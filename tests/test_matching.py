"""distok's objective: the residual decoder, the distribution-matching task, styles, refinement, eval by style."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distok_cli.backends.token_estimators import TextEstimator
from distok_cli.errors import BadInput
from distok_cli.files import checkpoint, recipes
from distok_cli.method import evaluation, matching, trainer
from distok_cli.method.model import DisTok

from .conftest import assert_one_line_error, break_step, ctrl_c, run_cli

FAST = [
    "estimator.kind=text",
    "train.estimate_every=5",
    "train.estimate_n=4",
    "train.n=6",
    "train.styles=[a photo of a, a drawing of a]",
]
SPACE = {"encoder": "e", "dim": 16, "fingerprint": "f"}


@pytest.fixture(scope="module")
def drun(tmp_path_factory, kandinsky):
    """A tiny run with distok's objective (text-side estimator), trained once for this module."""
    path = tmp_path_factory.mktemp("runs") / "distok"
    r = run_cli(["train", "-o", path, "--steps", "10", "-q", *sum((["--set", s] for s in FAST), [])])
    assert r.code == 0, r.err
    return path


def _trainer(tiny_recipe, kandinsky, tmp_path, extra=()):
    cfg = recipes.override(tiny_recipe, [*FAST, *extra])
    e = cfg.estimator
    est = TextEstimator(kandinsky.text, list(cfg.classes), e.template, e.prompt, e.temperature, "tiny")
    return cfg, trainer.Trainer(cfg, tmp_path / "r", kandinsky.text, est)


# --------------------------------------------------------------------------------- residual decoder


def test_a_residual_model_starts_at_the_mix_and_samples_through_its_skip():
    torch.manual_seed(0)
    m = DisTok(16, 32, 4, residual=True)
    x = torch.randn(3, 16)
    z, tok = m(x)
    torch.testing.assert_close(tok, x)  # D_tok's last layer starts at zero: token = mix exactly
    torch.testing.assert_close(m.decode(z), m.skip(z))  # a latent alone decodes through skip (+ the zero correction)
    with torch.no_grad():
        m.D_tok[2].bias.fill_(0.5)
    z, tok = m(x)
    torch.testing.assert_close(tok, x + 0.5)
    torch.testing.assert_close(m.decode(z), m.skip(z) + 0.5)


def test_numpy_checkpoint_of_a_residual_model_matches_torch():
    torch.manual_seed(1)
    m = DisTok(16, 32, 4, residual=True)
    for p in m.parameters():  # no zero layer: every path must agree
        torch.nn.init.normal_(p, std=0.3)
    ck = m.to_checkpoint(torch.randn(5, 16), {"classes": list("abcde"), "token_space": SPACE})
    assert ck.config["residual"] is True and {"skip.weight", "skip.bias"} <= set(ck.tensors)
    x = torch.randn(3, 16)
    z, tok = m(x)
    cz, ctok = ck.tokens(x.numpy())
    np.testing.assert_allclose(cz, z.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ctok, tok.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ck.decode(cz), m.decode(z).detach().numpy(), rtol=1e-5, atol=1e-5)
    back = DisTok.from_checkpoint(checkpoint.Checkpoint(ck.tensors, ck.config))
    assert back.residual
    torch.testing.assert_close(back(x)[1], tok)


def test_checkpoint_tensors_must_match_the_residual_flag(tmp_path):
    m = DisTok(16, 32, 4, residual=True)
    ck = m.to_checkpoint(
        torch.randn(5, 16),
        {"classes": list("abcde"), "token_space": {**SPACE, "fingerprint": "fp16-sha256:" + "0" * 64}},
    )
    ck.save(tmp_path / "ok.safetensors")
    assert checkpoint.load(tmp_path / "ok.safetensors").residual
    no_skip = checkpoint.Checkpoint({k: v for k, v in ck.tensors.items() if not k.startswith("skip.")}, ck.config)
    no_skip.save(tmp_path / "a.safetensors")
    flag_off = checkpoint.Checkpoint(ck.tensors, {**ck.config, "residual": False})
    flag_off.save(tmp_path / "b.safetensors")
    for name in ("a", "b"):
        with pytest.raises(Exception, match="checkpoint tensors are"):
            checkpoint.load(tmp_path / f"{name}.safetensors")


def test_l_rec_by_hand():
    from distok_cli.method import losses

    rec = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    mix = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    # squared errors per row: 1 and 4 (mean 2.5); squared norms: 2 and 4 (mean 3)
    assert float(losses.l_rec(rec, mix)) == pytest.approx(2.5 / 3)


# ---------------------------------------------------------------------------------- matching task


def test_match_batch_draws_user_like_distributions(tiny_recipe, kandinsky, tmp_path):
    cfg, t = _trainer(tiny_recipe, kandinsky, tmp_path, ["train.n=400"])
    p, styles = t.match_batch()
    assert p.shape == (400, 8) and len(styles) == 400
    torch.testing.assert_close(p.sum(1), torch.ones(400))
    arity = (p > 0).sum(1)
    assert set(arity.tolist()) == {1, 2, 3, 4}  # uniform over 1..4: all four appear in 400 draws
    assert set(styles) == {0, 1}
    _, t2 = _trainer(tiny_recipe, kandinsky, tmp_path / "again", ["train.n=400"])
    torch.testing.assert_close(t2.match_batch()[0], p)  # the same seed draws the same batch


def test_match_step_loss_is_the_kl_of_the_text_estimate_by_hand(tiny_recipe, kandinsky, tmp_path):
    cfg, t = _trainer(tiny_recipe, kandinsky, tmp_path, ["train.p_match=1", "train.gamma=0"])
    assert t.match_T == [pytest.approx(t.calibrated_temperature(0)), pytest.approx(t.calibrated_temperature(1))]
    state = t.gen.get_state()
    t.choose_task()
    p, styles = t.match_batch()
    t.gen.set_state(state)
    model = DisTok(t.model.dim, cfg.train.hidden, cfg.train.latent_dim, residual=True)
    model.load_state_dict(t.model.state_dict())
    mix = p @ t.class_emb
    tok = model(mix)[1]
    want = []
    for i, s in enumerate(styles):  # KL(p ‖ softmax(cos(E("S <t>"), E("S c")) / T)), written out
        style = cfg.train.styles[s]
        e = F.normalize(kandinsky.text.encode([f"{style} <distok>"], tok[i : i + 1]), dim=-1)
        c = F.normalize(kandinsky.text.encode([f"{style} {k}" for k in cfg.classes]), dim=-1)
        logq = ((e @ c.T)[0].double() / t.match_T[s]).log_softmax(-1).detach()
        want.append(sum(float(p[i, k]) * (np.log(float(p[i, k])) - float(logq[k])) for k in range(8) if p[i, k] > 0))
    rec = (((model.skip(model.E_dis(mix)) - mix) ** 2).sum(-1).mean() / (mix**2).sum(-1).mean()).detach()
    r = t.train_step()
    assert r.task == "match"
    assert r.l_match == pytest.approx(float(np.mean(want)), rel=1e-4)
    assert r.l_rec == pytest.approx(float(rec), rel=1e-4)
    assert r.loss == pytest.approx(float(np.mean(want)) + float(rec), rel=1e-4)


def test_the_paper_objective_never_matches(tiny_recipe, kandinsky, tmp_path):
    _, t = _trainer(tiny_recipe, kandinsky, tmp_path, list(recipes.PAPER_METHOD))
    assert t.scorer is None and not t.model.residual
    assert {t.train_step().task for _ in range(6)} <= {"mix", "cst"}


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_an_interrupted_cosine_run_resumes_exactly(tmp_path, monkeypatch, kandinsky):
    """The learning rate is a function of the step and the run's target, so Ctrl-C then --resume ends
    byte-identical to a straight run."""
    sets = sum((["--set", s] for s in [*FAST, "train.lr_schedule=cosine"]), [])
    break_step(monkeypatch, 4, ctrl_c)
    assert run_cli(["train", "-o", tmp_path / "b", "--steps", "7", "-q", *sets]).code == 130
    monkeypatch.undo()
    assert run_cli(["train", "-o", tmp_path / "b", "--resume", "-q"]).code == 0
    assert run_cli(["train", "-o", tmp_path / "a", "--steps", "7", "-q", *sets]).code == 0
    for name in ("model.safetensors", "state.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    constant = tmp_path / "c"
    assert run_cli(["train", "-o", constant, "--steps", "7", "-q", *sum((["--set", s] for s in FAST), [])]).code == 0
    assert (constant / "model.safetensors").read_bytes() != (tmp_path / "a" / "model.safetensors").read_bytes()


def test_a_run_records_its_objective_styles_and_temperature(drun):
    cfg = checkpoint.load(drun).config
    assert cfg["objective"] == "distok" and cfg["residual"] is True
    assert cfg["styles"] == ["a photo of a", "a drawing of a"] and len(cfg["match_temperature"]) == 2
    assert min(cfg["match_temperature"]) > 0
    rows = [json.loads(x) for x in (drun / "log.jsonl").read_text().splitlines()]
    assert any(r["task"] == "match" and r["l_match"] > 0 for r in rows) and all(r["l_rec"] is not None for r in rows)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.fusion_input=sum"], "recipe key train.residual needs train.fusion_input: mean"),
        (["train.styles=[]"], "recipe key train.objective distok needs at least one style in train.styles"),
        (["train.styles=[a <> of a]"], "recipe key train.styles.0 must be a prompt prefix such as 'a watercolor of a'"),
        (["train.objective=clip"], "recipe key train.objective must be one of 'distok', 'paper', got 'clip'"),
    ],
)
def test_inconsistent_objective_settings_exit_2(tmp_path, sets, message):
    r = run_cli(["train", "-o", tmp_path / "r", "--steps", "1", *sum((["--set", s] for s in sets), [])])
    assert_one_line_error(r, 2, message)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------- refinement


def test_refine_lowers_the_kl_in_every_training_style(drun, kandinsky):
    ck = checkpoint.load(drun)
    scorer = matching.scorer_for(ck, kandinsky.text)
    p = np.zeros((2, 8), np.float32)
    p[0, [0, 2]] = [0.7, 0.3]
    p[1, [1, 3, 4]] = [0.5, 0.3, 0.2]
    start = ck.tokens(p @ ck.class_embeddings)[1]
    out, seconds = matching.refine(scorer, start, p, 20)
    assert out.shape == start.shape and seconds > 0
    for s in range(2):
        before = scorer.kl(torch.as_tensor(p), torch.as_tensor(start), [s, s])
        after = scorer.kl(torch.as_tensor(p), torch.as_tensor(out), [s, s])
        assert bool((after < before).all()), (s, before, after)
    np.testing.assert_array_equal(matching.refine(scorer, start, p, 0)[0], start)  # 0 steps: unchanged


def test_encode_refine_writes_the_refined_token_and_its_record(drun, tmp_path):
    plain = run_cli(["encode", "cat:0.6,dog:0.4", "-m", drun, "-o", tmp_path / "a.distok", "-q", "--refine", "0"])
    r = run_cli(["encode", "cat:0.6,dog:0.4", "-m", drun, "-o", tmp_path / "b.distok", "--refine", "5"])
    assert plain.code == 0 and r.code == 0, r.err
    assert r.out == f"{tmp_path / 'b.distok'}\n"
    from distok_cli.files import tokenfile

    a, b = tokenfile.load(tmp_path / "a.distok"), tokenfile.load(tmp_path / "b.distok")
    ref = b.source["refine"]
    assert (
        ref["steps"] == 5 and ref["styles"] == ["a photo of a", "a drawing of a"] and ref["kl_after"] < ref["kl_before"]
    )
    assert f"KL {ref['kl_before']:.3f} -> {ref['kl_after']:.3f}" in r.err
    assert not np.array_equal(a.vector, b.vector) and b.source["distribution"] == a.source["distribution"]
    shown = run_cli(["inspect", tmp_path / "b.distok"])
    assert "refined" in shown.out and "5 steps in 2 styles" in shown.out


def test_encode_refine_bad_input_exits_2_before_loading(run_paper, drun, tmp_path):
    r = run_cli(["encode", "cat:1", "-m", run_paper, "-o", tmp_path / "x.distok", "--refine", "3"])
    assert_one_line_error(
        r, 2, "the model was not trained with distok's objective (no styles); --refine needs one that was"
    )
    (tmp_path / "y.distok").write_bytes(b"")
    r = run_cli(["encode", "cat:1", "-m", drun, "-o", tmp_path / "y.distok", "--refine", "3"])
    assert_one_line_error(r, 2, "y.distok exists (use --overwrite to replace)")
    for bad in ("-1", "10001", "some", "2.5"):
        r = run_cli(["encode", "cat:1", "-m", drun, "--refine", bad])
        assert_one_line_error(r, 2, f"--refine must be auto or a number of steps from 0 to 10000, got {bad!r}")


def test_encode_refines_by_default_a_model_trained_with_distoks_objective(drun, run_paper, tmp_path):
    """`--refine auto` (the default): DEFAULT_REFINE steps for a model with training styles; the encoder's token,
    one forward, for the paper's objective (nothing to refine against) and with --refine 0."""
    from distok_cli import api
    from distok_cli.files import tokenfile

    r = run_cli(["encode", "cat:0.6,dog:0.4", "-m", drun, "-o", tmp_path / "auto.distok"])
    assert r.code == 0, r.err
    auto = tokenfile.load(tmp_path / "auto.distok")
    assert auto.source["refine"]["steps"] == matching.DEFAULT_REFINE == 30
    assert f"refined 30 steps in 2 styles: KL {auto.source['refine']['kl_before']:.3f}" in r.err
    model = api.load(drun)
    np.testing.assert_array_equal(model.encode("cat:0.6,dog:0.4").vector, auto.vector)  # the API's default is the CLI's
    pure = model.encode("cat:0.6,dog:0.4", refine=0)
    assert "refine" not in pure.source and not np.array_equal(pure.vector, auto.vector)
    assert run_cli(["encode", "cat:1", "-m", run_paper, "-o", tmp_path / "p.distok", "-q"]).code == 0
    assert "refine" not in tokenfile.load(tmp_path / "p.distok").source
    with pytest.raises(BadInput, match="refine must be 'auto' or a number of steps from 0 to 10000, got 'x'"):
        model.encode("cat:1", refine="x")


@pytest.fixture(scope="module")
def run_paper(tmp_path_factory, kandinsky):
    path = tmp_path_factory.mktemp("runs") / "paper"
    sets = ["estimator.kind=text", "train.estimate_every=5", "train.estimate_n=4", *recipes.PAPER_METHOD]
    r = run_cli(["train", "-o", path, "--steps", "3", "-q", *sum((["--set", s] for s in sets), [])])
    assert r.code == 0, r.err
    return path


# ------------------------------------------------------------------------------------ eval by style


def test_eval_by_style_reports_every_style_and_their_mean(drun, tmp_path):
    styles = tmp_path / "styles.json"
    styles.write_text(json.dumps(["a watercolor of a", "a plush toy of a"]))
    dists = tmp_path / "d.json"
    dists.write_text(json.dumps([{"cat": 1}, {"cat": 0.5, "dog": 0.5}, {"pig": 0.6, "owl": 0.3, "fox": 0.1}]))
    r = run_cli(
        [
            "eval",
            drun,
            "--styles",
            styles,
            "--distributions",
            dists,
            "--refine",
            "3",
            "--json",
            "-q",
            "-o",
            tmp_path / "ev",
        ]
    )
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    assert rep["training_style"] == "a photo of a"
    h = rep["held_out"]
    assert set(rep["by_style"]) == {"a watercolor of a", "a plush toy of a"}
    assert h["styles"] == ["a watercolor of a", "a plush toy of a"]
    for arm in ("distok", "raw_mix", "refined"):
        want = np.mean([rep["by_style"][s][arm]["kl"] for s in rep["by_style"]])
        assert h[arm]["kl"] == pytest.approx(want)
        assert h[arm]["by_arity"]["1"] == pytest.approx(
            np.mean([rep["by_style"][s][arm]["by_arity"]["1"]["kl"] for s in rep["by_style"]])
        )
    assert h["kl_reduction"] == pytest.approx(1 - h["distok"]["kl"] / h["raw_mix"]["kl"])
    assert rep["refine"]["steps"] == 3 and rep["refine"]["seconds_per_token"] > 0
    md = (tmp_path / "ev" / "eval.md").read_text()
    assert "| a photo of a (training) |" in md and "| a plush toy of a |" in md and "2 held-out styles" in md
    assert (tmp_path / "ev" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ev" / "eval-items.png").is_file()


def test_a_style_changes_what_the_estimator_reads(drun, kandinsky):
    """Restyled, the text estimator puts the token and the classes in the style's prompts."""
    e = TextEstimator(kandinsky.text, ["cat", "dog"], "a photo of a {}", "a photo of a <>", 0.05, "tiny")
    w = e.restyled("a watercolor of a")
    assert (w.prompt, w.template) == ("a watercolor of a <>", "a watercolor of a {}")
    want = F.normalize(kandinsky.text.encode(["a watercolor of a cat", "a watercolor of a dog"]), dim=-1)
    torch.testing.assert_close(w.class_emb, want)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "expected a JSON list of 1 to 100 styles"),
        ('["a <> of a"]', "style 0 must be a prompt prefix"),
        ('["a photo of a", "a photo of a"]', "a style is listed twice"),
        ('{"tuning": ["x"]}', "expected a JSON list of 1 to 100 styles"),
        ("[1]", "style 0 must be a prompt prefix"),
    ],
)
def test_bad_styles_files_exit_2(drun, tmp_path, content, message):
    p = tmp_path / "s.json"
    p.write_text(content)
    assert_one_line_error(run_cli(["eval", drun, "--styles", p, "-q"]), 2, message)


def test_eval_refine_needs_a_distok_model(run_paper):
    assert_one_line_error(run_cli(["eval", run_paper, "--refine", "2", "-q"]), 2, "--refine needs one that was")


def test_the_committed_styles_are_disjoint_from_each_other_and_from_training():
    held, tuning = evaluation.default_styles("held_out"), evaluation.default_styles("tuning")
    assert len(held) >= 5 and not set(held) & set(tuning)
    assert not (set(held) | set(tuning)) & set(recipes.TRAINING_STYLES)
    for name in ("minilm-animals", "kandinsky21-animals", "sd15-animals"):
        assert not set(recipes.load(name).train.styles) & (set(held) | set(tuning))


def test_protocol_sets_differ_and_cover_arities_one_to_four():
    tune = evaluation.protocol_set(recipes.ANIMALS_60, "tuning")
    test = evaluation.protocol_set(recipes.ANIMALS_60, "test")
    assert tune != test and len(test) == 40
    assert {len(p) for p in test} == {1, 2, 3, 4}
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in test)


def test_the_demo_ends_with_its_held_out_comparison(drun, kandinsky):
    """The demo's last line: its model against the raw mix on the protocol's test distributions in the
    held-out styles (the API's Model.held_out), as evaluate computes it."""
    import re

    from distok_cli.api import tour
    from distok_cli.api.model import Model

    ck = checkpoint.load(drun)
    est = TextEstimator(kandinsky.text, ck.classes, "a photo of a {}", "a photo of a <>", 0.05, "tiny")
    line = tour._verdict(Model(ck, str(drun), _estimator=est))
    m = re.fullmatch(
        r"tokens vs no model: KL (\d+\.\d\d) vs (\d+\.\d\d) \(([+-]\d+) %\) on 20 unseen distributions x 6 unseen styles",
        line,
    )
    assert m, line
    rep = evaluation.evaluate(
        ck, est, evaluation.protocol_set(ck.classes, "test", 20), styles=evaluation.default_styles()
    )
    h = rep["held_out"]
    assert m.groups() == (f"{h['distok']['kl']:.2f}", f"{h['raw_mix']['kl']:.2f}", f"{100 * -h['kl_reduction']:+.0f}")


def test_one_matching_temperature_for_every_style(tiny_recipe, kandinsky, tmp_path):
    """match_calibration: first: one T (the first style's), a number in the checkpoint, which loads."""
    _, t = _trainer(tiny_recipe, kandinsky, tmp_path, ["train.match_calibration=first"])
    assert isinstance(t.match_T, float) and t.match_T == pytest.approx(t.calibrated_temperature(0))
    t.save()
    assert checkpoint.load(tmp_path / "r").config["match_temperature"] == pytest.approx(t.match_T)
    fixed = _trainer(tiny_recipe, kandinsky, tmp_path / "fixed", ["train.match_temperature=0.07"])[1]
    assert fixed.match_T == 0.07

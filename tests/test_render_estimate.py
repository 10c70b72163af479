"""Render and estimate on the tiny twins, through the same from_pretrained code as the real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distok_cli.backends.pipelines import Settings
from distok_cli.backends.textside import TextSide
from distok_cli.files import tokenfile

from .conftest import EXAMPLES, ROOT, assert_one_line_error, make_token, run_cli


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, space):
    d = tmp_path_factory.mktemp("tokens")
    rng = np.random.default_rng(0)
    paths = []
    for name in ("alpha", "beta"):
        paths.append(tokenfile.save(make_token(space, rng.standard_normal(768) * 0.05), d / f"{name}.distok"))
    return paths


def _px(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_twins_are_saved_and_loaded_as_pipelines(kandinsky, sd):
    from diffusers import KandinskyPipeline, KandinskyPriorPipeline, StableDiffusionPipeline

    assert isinstance(kandinsky.prior, KandinskyPriorPipeline) and isinstance(kandinsky.decoder, KandinskyPipeline)
    assert isinstance(sd.pipe, StableDiffusionPipeline)
    from distok_cli.backends.twins import cache_dir

    assert (cache_dir() / "kandinsky21-prior" / "model_index.json").is_file()
    # The prior's and SD's text encoders share one token space, as CLIP ViT-L/14 does for the real models.
    assert kandinsky.text.fingerprint == sd.text.fingerprint


def test_same_token_and_seed_give_identical_pixels_and_other_tokens_differ(kandinsky, tiny_recipe):
    s = Settings.from_config(tiny_recipe.render)
    v = torch.randn(2, 768, generator=torch.Generator().manual_seed(1)) * 0.05
    a = kandinsky.render(v, ["a photo of a <>"] * 2, [3, 3], s)
    b = kandinsky.render(v, ["a photo of a <>"] * 2, [3, 3], s)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    assert np.abs(np.asarray(a[0]).astype(int) - np.asarray(a[1]).astype(int)).max() > 20


def test_sd_renders_through_diffusers_textual_inversion_loader(sd, tiny_recipe):
    s = Settings.from_config(tiny_recipe.render)
    v = torch.randn(2, 768, generator=torch.Generator().manual_seed(2)) * 0.05
    a = sd.render(v, ["a photo of a <>"] * 2, [0, 0], s)
    assert np.abs(np.asarray(a[0]).astype(int) - np.asarray(a[1]).astype(int)).max() > 0
    assert "<distok-ti-0>" not in sd.pipe.tokenizer.get_vocab()  # unloaded afterwards


@pytest.mark.parametrize(
    "name",
    ["pig-sheep-snake.distok", "sampled-cauchy.distok", "composition.distok", "plain-textual-inversion.safetensors"],
)
def test_golden_tokens_load_through_diffusers_load_textual_inversion(sd, name):
    pipe = sd.pipe
    pipe.load_textual_inversion(str(EXAMPLES / name), token="<golden>")
    try:
        tid = pipe.tokenizer.convert_tokens_to_ids("<golden>")
        row = pipe.text_encoder.get_input_embeddings().weight[tid].detach().numpy()
        np.testing.assert_array_equal(row, tokenfile.load(EXAMPLES / name).vector)
    finally:
        pipe.unload_textual_inversion(tokens=["<golden>"])


def test_injected_vector_equals_a_real_embedding_row(kandinsky):
    """The hook path gives exactly what a hand-built vocabulary row gives."""
    text = kandinsky.text
    vec = torch.randn(768, generator=torch.Generator().manual_seed(3)) * 0.05
    via_hook = text.encode(["a photo of a <>".replace("<>", "<distok>")], vec[None])
    # Hand-built: write the vector into the placeholder's own embedding row, no hook vectors.
    emb = text.encoder.get_input_embeddings().weight
    saved = emb[text.ids[0]].detach().clone()
    with torch.no_grad():
        emb[text.ids[0]] = vec
    try:
        by_row = text.encode(["a photo of a <distok>"])
    finally:
        with torch.no_grad():
            emb[text.ids[0]] = saved
    torch.testing.assert_close(via_hook, by_row, rtol=0, atol=1e-6)
    other = text.encode(["a photo of a <distok>"], -vec[None])
    assert (other - via_hook).abs().max() > 1e-3


def test_injection_into_the_tokens_own_batch_never_syncs_and_other_batches_are_checked(kandinsky):
    """On the token's own batch the hook has no data-dependent branch (a `bool(tensor)` is a host-device
    sync on a GPU and breaks CUDA graphs): no ATen scalar read happens while the encoder runs. A batch of
    another size (the pipelines' unconditional prompts) passes untouched, unless it holds a placeholder."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from distok_cli.errors import BadInput

    class Reads(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += func is torch.ops.aten._local_scalar_dense.default
            return func(*args, **(kwargs or {}))

    text = kandinsky.text
    prompts = [TextSide.fill("a photo of a <>"), "a photo of a cat"]
    vec = torch.randn(2, 768, generator=torch.Generator().manual_seed(4)) * 0.05
    ids, _ = text._inputs(prompts)  # tokenized and cached first (the tokenizer's trim reads scalars)
    reads = Reads()
    with text.inject(vec), reads:
        text.encoder(input_ids=ids)
    assert reads.n == 0
    with torch.no_grad():
        got = text.encode(prompts, vec)
        plain = text.encode(prompts)
    assert (got[0] - plain[0]).abs().max() > 1e-3  # the token's row changed,
    torch.testing.assert_close(got[1], plain[1], rtol=0, atol=0)  # the row without a placeholder did not
    with torch.no_grad(), text.inject(vec):
        other = text.encoder(input_ids=text._inputs(["", "", ""])[0]).text_embeds
        torch.testing.assert_close(other, text.encode(["", "", ""]), rtol=0, atol=0)
        with pytest.raises(BadInput, match=r"^3 prompts with a token but 2 token vectors$"):
            text.encoder(input_ids=text._inputs([TextSide.fill("a photo of a <>")] * 3)[0])


def test_encode_tokenizes_a_repeated_prompt_batch_once(kandinsky, monkeypatch):
    """Training encodes q_a × n every step: its token ids come from a cache, not the tokenizer."""
    text = kandinsky.text
    prompts = [TextSide.fill("a velvet sculpture of a <>")] * 4
    calls = []
    batch = text._batch
    monkeypatch.setattr(text, "_batch", lambda p: (calls.append(len(p)), batch(p))[1])
    vec = torch.randn(4, 768, generator=torch.Generator().manual_seed(2)) * 0.05
    first, again = text.encode(prompts, vec), text.encode(prompts, vec)
    text.encode(prompts[:2], vec[:2])
    assert calls == [4, 2]
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def test_gradients_reach_the_vector_and_never_the_encoder(kandinsky):
    text = kandinsky.text
    vec = (torch.randn(2, 768) * 0.05).requires_grad_(True)
    e = text.encode([TextSide.fill("a photo of a <>")] * 2, vec)
    e.sum().backward()
    assert vec.grad is not None and vec.grad.abs().sum() > 0
    assert all(p.grad is None for p in text.encoder.parameters())


def test_encode_runs_only_up_to_the_last_eos_and_pools_what_77_positions_give(kandinsky):
    """Causal attention + pooling at the first EOS: padding after it cannot change E(prompt)."""
    text = kandinsky.text
    prompts = [TextSide.fill("a photo of a <>"), TextSide.fill("a watercolor painting of a small <>")]
    vec = torch.randn(2, 768, generator=torch.Generator().manual_seed(5)) * 0.05
    seen = []
    handle = text.encoder.get_input_embeddings().register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    try:
        trimmed = text.encode(prompts, vec)
    finally:
        handle.remove()
    ids = text.tokenize(prompts)
    longest = int((ids == text.tokenizer.eos_token_id).int().argmax(-1).max()) + 1
    assert ids.shape[1] == 77 and seen == [torch.Size([2, longest])] and longest < 77
    with text.inject(vec):
        full = text.encoder(input_ids=ids).text_embeds
    torch.testing.assert_close(trimmed, full, rtol=0, atol=1e-5)


def test_legacy_eos_config_is_fixed_so_pooling_happens_at_eos():
    from distok_cli.backends import twins

    pipe = twins.build_prior(legacy_eos=True)
    te, tok = pipe.text_encoder, pipe.tokenizer
    assert te.config.eos_token_id == 2
    text = TextSide(tok, te, "twin:legacy")
    assert te.config.eos_token_id == tok.eos_token_id
    ids = text.tokenize(["a photo of a <distok>"])
    vec = torch.randn(1, 768) * 0.05
    with text.inject(vec):
        out = te(input_ids=ids)
    eos = int((ids[0] == tok.eos_token_id).nonzero()[0])
    torch.testing.assert_close(out.text_embeds, te.text_projection(out.last_hidden_state[:, eos]))
    # The legacy argmax would have pooled at the placeholder (the largest id), not at EOS:
    assert int(ids[0].argmax()) != eos and int(ids[0].argmax()) == int((ids[0] == text.ids[0]).nonzero()[0])


def test_render_cli_writes_pngs_with_metadata_and_from_reproduces(tokens, tmp_path):
    out = tmp_path / "r"
    r = run_cli(["render", tokens[0], "a photo of a <>", "a watercolor of a <>", "--seeds", "0-1", "-o", out, "-q"])
    assert r.code == 0, r.err
    paths = r.out.split()
    assert paths == [
        str(out / f"alpha_{p}_{s}.png") for p in ("a-photo-of-a-tok", "a-watercolor-of-a-tok") for s in (0, 1)
    ]
    from PIL import Image

    with Image.open(paths[1]) as im:
        meta = json.loads(im.text["distok"])
        params = im.text["parameters"]
    assert meta["prompt"] == "a photo of a <>" and meta["seed"] == 1
    assert meta["token"]["id"] == tokenfile.load(tokens[0]).id
    import jsonschema

    from .conftest import ROOT

    schema = json.loads((ROOT / "formats" / "distok-png-record-v1.schema.json").read_text())
    jsonschema.validate(meta, schema)  # the record the writer makes is the one the spec describes
    for broken in ({**meta, "seed": -1}, {k: v for k, v in meta.items() if k != "settings"}, {**meta, "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
    assert params.startswith("a photo of a <>\nSteps: 2, Prior steps: 2, CFG scale: 4.0") and "Seed: 1" in params
    again = tmp_path / "again"
    r2 = run_cli(["render", "--from", paths[1], "-o", again, "-q"])
    assert r2.code == 0, r2.err
    # The record lists the batch of 4 it was rendered in; --from renders that batch again: bit-exact.
    assert [(i["prompt"], i["seed"]) for i in meta["batch"]["items"]] == [
        ("a photo of a <>", 0),
        ("a photo of a <>", 1),
        ("a watercolor of a <>", 0),
        ("a watercolor of a <>", 1),
    ]
    assert meta["batch"]["index"] == 1 and r2.out.strip() == str(again / "alpha_a-photo-of-a-tok_1.png")
    assert np.array_equal(_px(r2.out.strip()), _px(paths[1])) and sorted(os.listdir(again)) == [
        "alpha_a-photo-of-a-tok_1.png"
    ]
    # Rendered alone both times: bit-exact.
    single = tmp_path / "single"
    r4 = run_cli(["render", tokens[0], "a photo of a <>", "--seed", "5", "--batch-size", "1", "-o", single, "-q"])
    r5 = run_cli(["render", "--from", r4.out.strip(), "-o", tmp_path / "single2", "-q"])
    assert r5.code == 0 and np.array_equal(_px(r5.out.strip()), _px(r4.out.strip()))
    # Nothing is overwritten without --overwrite, and nothing is half-written.
    r3 = run_cli(["render", tokens[0], "a photo of a <>", "--seed", "0", "-o", out])
    assert_one_line_error(r3, 2, "exists (use --overwrite to replace)")
    assert run_cli(["render", tokens[0], "a photo of a <>", "-o", out, "--overwrite", "-q"]).code == 0
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_a_re_render_is_exact_alone_and_inside_a_batch_of_three(tokens, tmp_path):
    """One prompt rendered alone and as one of three prompts (--batch-size 3); each re-rendered from its PNG
    gives its own pixels exactly, whatever shared its batch."""
    alone = run_cli(["render", tokens[0], "a photo of a <>", "--seed", "7", "-o", tmp_path / "alone", "-q"])
    three = run_cli(
        [
            "render",
            tokens[0],
            "a sketch of a <>",
            "a photo of a <>",
            "a toy of a <>",
            "--seed",
            "7",
            "--batch-size",
            "3",
            "-o",
            tmp_path / "three",
            "-q",
        ]
    )
    assert alone.code == 0 and three.code == 0, three.err
    a, b = alone.out.strip(), three.out.split()[1]
    assert Path(a).name == Path(b).name == "alpha_a-photo-of-a-tok_7.png"
    for original, folder in ((a, "again-alone"), (b, "again-three")):
        r = run_cli(["render", "--from", original, "-o", tmp_path / folder, "-q"])
        assert r.code == 0, r.err
        assert np.array_equal(_px(r.out.strip()), _px(original)), original
    from PIL import Image

    with Image.open(a) as im:
        assert "batch" not in json.loads(im.text["distok"])  # rendered alone: nothing to replay
    (tmp_path / "gone.distok").write_bytes(Path(tokens[1]).read_bytes())
    mixed = run_cli(
        ["render", tmp_path / "gone.distok", tokens[0], "a photo of a <>", "--seed", "1", "-o", tmp_path / "m", "-q"]
    )
    assert mixed.code == 0, mixed.err
    (tmp_path / "gone.distok").unlink()  # a batch-mate's token file is gone: the batch cannot be rendered again
    target = [p for p in mixed.out.split() if "alpha" in p][0]
    assert_one_line_error(run_cli(["render", "--from", target, "-o", tmp_path / "m2"]), 2, "gone.distok")


def test_render_reads_tokens_from_stdin_and_writes_a_grid(tokens, tmp_path):
    r = run_cli(
        ["render", "-", "a photo of a <>", "a plush toy of a <>", "--grid", "-o", tmp_path, "-q"],
        stdin="\n".join(tokens) + "\n",
    )
    assert r.code == 0, r.err
    lines = r.out.split()
    assert len(lines) == 5 and lines[-1] == str(tmp_path / "grid.png")
    from PIL import Image

    with Image.open(lines[-1]) as im:
        assert im.size[0] > 2 * 160 and im.size[1] > 2 * 160


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["TOKEN", "a photo of a cat"], 2, "'a photo of a cat' is neither a token file nor a prompt with '<>'"),
        (["TOKEN"], 2, "no prompt given"),
        (["TOKEN", "a <> and a <>"], 2, "has more than one '<>'"),
        (["a photo of a <>"], 2, "no token files given"),
        (
            [str(EXAMPLES / "pig-sheep-snake.distok"), "a photo of a <>", "--recipe", "tiny"],
            2,
            "was made for kandinsky-community/kandinsky-2-1-prior",
        ),
        (
            [str(EXAMPLES / "pig-sheep-snake.distok"), "a photo of a <>"],
            1,  # its recorded recipe: the real models
            "model 'kandinsky-community/kandinsky-2-1-prior' is not available locally",
        ),
        (["TOKEN", "a photo of a <>", "--seeds", "3-1"], 2, "--seeds: bad range '3-1'"),
        (["TOKEN", "a photo of a <>", "--prior-steps", "1"], 2, "Invalid value for '--prior-steps'"),
        (["TOKEN", "x" * 120 + " a photo of a <>"], 2, "is too long: the token falls past the text encoder's context"),
        (["TOKEN", "a photo of a <>", "--set", "render.prior_steps=1"], 2, "render.prior_steps must be at least 2"),
        (
            ["TOKEN", "a photo of a <>", "--set", "render.prior=acme/not-cached-prior"],
            1,
            "model 'acme/not-cached-prior' is not available locally (HF_HUB_OFFLINE is set",
        ),
        (["TOKEN", "a photo of a <>", "--recipe", "tinny"], 2, "unknown recipe 'tinny' (did you mean: tiny?)"),
        (
            ["TOKEN", "a photo of a <>", "--set", "render.sise=3"],
            2,
            "unknown recipe key 'render.sise' (did you mean: size?)",
        ),
        (["--from", str(EXAMPLES / "pig-sheep-snake.distok")], 2, "not a readable image"),
    ],
)
def test_render_errors(tokens, tmp_path, args, code, message):
    args = [tokens[0] if a == "TOKEN" else a for a in args]
    r = run_cli(["render", *args, "-o", tmp_path / "x"])
    assert_one_line_error(r, code, message)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_estimate_of_images_and_tokens_sums_to_one(tokens, tmp_path):
    r = run_cli(["render", tokens[1], "a photo of a <>", "-o", tmp_path, "-q"])
    img = r.out.strip()
    r = run_cli(["estimate", "--json", "-q", img, tokens[1], "--images", "2"])
    assert r.code == 0, r.err
    a, b = (json.loads(x) for x in r.out.splitlines())
    for d in (a, b):
        assert sum(d["distribution"].values()) == pytest.approx(1.0, abs=1e-9)
        assert set(d["distribution"]) == {"cat", "dog", "pig", "sheep", "snake", "fox", "owl", "frog"}
    assert a["kind"] == "image" and b["kind"] == "token" and b["seeds"] == [0, 1]
    # KL and JS against the source {cat: .6, dog: .4}, computed here by hand:
    q = b["distribution"]
    assert b["kl"] == pytest.approx(0.6 * np.log(0.6 / q["cat"]) + 0.4 * np.log(0.4 / q["dog"]))
    assert 0 < b["js"] < np.log(2)


def test_estimate_write_changes_only_metadata(tokens, tmp_path):
    import shutil

    p = tmp_path / "t.distok"
    shutil.copy(tokens[0], p)
    before = tokenfile.load(p)
    r = run_cli(["estimate", "--write", "-q", "--images", "1", str(p)])
    assert r.code == 0, r.err
    after = tokenfile.load(p)
    assert after.id == before.id and np.array_equal(after.vector, before.vector)
    assert after.source == before.source and after.space == before.space
    assert after.estimate["estimator"] == "blip-itm:twin:blip-itm" and after.estimate["seeds"] == [0]
    assert before.estimate is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--classes", "cat"], "--classes needs at least two classes"),
        (["--classes", "cat,,dog"], "has an empty class name"),
        (["--classes", "cow,horse"], "source class 'cat' is not among the estimate's classes"),
        (["--prompt", "a cat"], "has no '<>'"),
    ],
)
def test_estimate_errors(tokens, args, message):
    assert_one_line_error(run_cli(["estimate", tokens[0], *args]), 2, message)


def test_estimate_unreadable_image(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not a png")
    assert_one_line_error(run_cli(["estimate", str(bad)]), 2, "not a readable image")
    assert_one_line_error(run_cli(["estimate", str(bad), "--write"]), 2, "--write stores estimates in token files")


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_two_processes_split_the_work_each_item_once(tokens, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "distok_cli",
        "render",
        *tokens,
        "a photo of a <>",
        "--seeds",
        "0-2",
        "-o",
        str(tmp_path),
        "--recipe",
        "tiny",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    printed = r.stdout.split()
    assert len(printed) == 6 and len(set(printed)) == 6  # printed once, by the main process
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(os.path.basename(p) for p in printed)
    assert "process 0/2 renders 3 of 6 images" in r.stderr and "process 1/2 renders 3 of 6 images" in r.stderr


def test_blip_vqa_ranks_answers_by_log_likelihood_with_padding_masked(tiny_recipe):
    """Batched, padded answers give the same log-likelihoods as one unpadded answer at a time."""

    from PIL import Image

    from distok_cli.backends.blip import BlipVqaEstimator

    cfg = tiny_recipe.estimator.model_copy(update={"kind": "blip-vqa", "model": "twin:blip-vqa"})
    est = BlipVqaEstimator(cfg, "cpu")
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    classes = ["cat", "polar bear", "jellyfish"]
    batched = est.logits(imgs, classes)
    one_by_one = torch.cat([est.logits(imgs, [c]) for c in classes], dim=1)
    torch.testing.assert_close(batched, one_by_one, rtol=1e-4, atol=1e-4)
    probs = est.distributions(imgs, classes)
    torch.testing.assert_close(probs, (batched / cfg.temperature).softmax(-1))
    assert est.name == "blip-vqa:twin:blip-vqa"


def test_estimate_cli_with_blip_vqa(tokens):
    r = run_cli(
        [
            "estimate",
            "--json",
            "-q",
            "--estimator",
            "blip-vqa",
            "--set",
            "estimator.model=twin:blip-vqa",
            "--images",
            "1",
            tokens[0],
        ]
    )
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["estimator"] == "blip-vqa:twin:blip-vqa" and sum(d["distribution"].values()) == pytest.approx(1.0)


def test_render_on_a_missing_device_is_bad_input(tokens, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run_cli(["render", tokens[0], "a photo of a <>", "--device", "cuda", "-o", tmp_path])
    assert_one_line_error(r, 2, "--device cuda: CUDA is not available on this machine")


def test_estimate_plot_writes_a_png(tokens, tmp_path):
    r = run_cli(["estimate", "-q", "--estimator", "text", "--plot", tmp_path / "e.png", tokens[0], tokens[1]])
    assert r.code == 0, r.err
    from PIL import Image

    with Image.open(tmp_path / "e.png") as im:
        assert im.format == "PNG" and im.size[1] > 2 * 150


def test_plain_tokens_render_with_a_warning(tmp_path):
    r = run_cli(["render", str(EXAMPLES / "plain-textual-inversion.safetensors"), "a photo of a <>", "-o", tmp_path])
    assert r.code == 0 and "names no token space; rendering it with twin:kandinsky21-prior" in r.err


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_render_cli_on_the_sd15_backend(tokens, tmp_path, monkeypatch):
    r = run_cli(["render", tokens[0], "a photo of a <>", "--set", "render.backend=sd15", "-o", tmp_path, "-q"])
    assert r.code == 0, r.err
    from PIL import Image

    with Image.open(r.out.strip()) as im:
        meta = json.loads(im.text["distok"])
    assert meta["backend"] == "sd15" and meta["models"] == {"sd": "twin:sd15"}
    # --compile on SD too: the same UNet compile, the same pixels.
    from distok_cli.backends import pipelines, sd

    monkeypatch.setitem(pipelines.COMPILE, "backend", "aot_eager")
    compiled = []
    monkeypatch.setattr(
        sd, "compile_unet", lambda pipe: (compiled.append(type(pipe).__name__), pipe.unet.compile(**pipelines.COMPILE))
    )
    rc = run_cli(
        [
            "render",
            tokens[0],
            "a photo of a <>",
            "--set",
            "render.backend=sd15",
            "--compile",
            "-o",
            tmp_path / "c",
            "-q",
        ]
    )
    assert rc.code == 0, rc.err
    assert compiled == ["StableDiffusionPipeline"] and np.array_equal(_px(rc.out.strip()), _px(r.out.strip()))


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_render_compile_gives_the_eager_pixels_and_pads_the_short_last_batch(tokens, tmp_path, monkeypatch):
    """--compile runs the UNet through torch.compile (here with the aot_eager backend: no C compiler
    needed, same Dynamo capture) with static shapes, so a short last batch is filled up, not recompiled."""
    from distok_cli.backends import kandinsky as render_mod
    from distok_cli.backends import pipelines

    monkeypatch.setitem(pipelines.COMPILE, "backend", "aot_eager")
    calls = []
    original = render_mod.KandinskyRenderer.render

    def spy(self, vectors, prompts, seeds, s, paths=None):
        calls.append((len(prompts), self.decoder.unet._compiled_call_impl is not None))
        return original(self, vectors, prompts, seeds, s, paths)

    monkeypatch.setattr(render_mod.KandinskyRenderer, "render", spy)
    args = [*tokens, "a photo of a <>", "--seeds", "0-1", "--batch-size", "3", "-q"]  # 4 images: 3 + 1
    eager = run_cli(["render", *args, "-o", tmp_path / "eager"])
    compiled = run_cli(["render", *args, "--compile", "-o", tmp_path / "compiled"])
    assert eager.code == 0 and compiled.code == 0, compiled.err
    assert calls == [(3, False), (1, False), (3, True), (3, True)]
    a, b = eager.out.split(), compiled.out.split()
    diffs = [int(np.abs(_px(x) - _px(y)).max()) for x, y in zip(a, b)]
    # Same batch shape: bit-exact. The 4th ran in a batch of 3 instead of 1: batch-size rounding only.
    assert a == [p.replace("compiled", "eager") for p in b] and diffs[:3] == [0, 0, 0] and diffs[3] <= 3


def test_constant_conditioning_is_computed_once_not_per_batch(kandinsky, tiny_recipe, monkeypatch):
    """M-CLIP only ever encodes "" and the image encoder only a black image: served from memory, the
    renders match the pipeline's own per-batch computation (up to batch-size rounding)."""
    from distok_cli.backends import kandinsky as render_mod

    s = Settings.from_config(tiny_recipe.render, batch_size=3)
    v = torch.randn(3, 768, generator=torch.Generator().manual_seed(7)) * 0.05
    prompts, seeds = ["a photo of a <>"] * 3, [0, 1, 2]

    def render_counting_calls(r):
        calls: list[int] = []
        hooks = [
            m.register_forward_hook(lambda *a: calls.append(1)) for m in (r.decoder.text_encoder, r.prior.image_encoder)
        ]
        try:
            return r.render(v, prompts, seeds, s), calls
        finally:
            for h in hooks:
                h.remove()

    monkeypatch.setattr(render_mod.KandinskyRenderer, "_freeze_constants", lambda self, offload: None)
    a, plain_calls = render_counting_calls(render_mod.KandinskyRenderer(tiny_recipe.render, "cpu", "float32"))
    b, frozen_calls = render_counting_calls(kandinsky)
    assert len(plain_calls) == 3 and frozen_calls == []  # M-CLIP: prompt + negative; image encoder: once
    assert max(int(np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).max()) for x, y in zip(a, b)) <= 3
    with pytest.raises(RuntimeError, match="takes empty prompts only"):
        kandinsky.decoder._encode_prompt(["a cat"], "cpu", 1, True)

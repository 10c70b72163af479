"""SDXL end to end on the twin (``--recipe sdxl-tiny``): train → sample/encode → render → estimate → export →
diffusers' own ``load_textual_inversion`` into the SDXL pipeline, and every token tool on two-part tokens.

The twin's encoders are 32 and 64 wide (CLIP-L's and OpenCLIP-G's stand-ins), so a swap of the two
parts anywhere changes a shape and fails here. The loop itself (every test on a trained SDXL twin) is behind
``slow`` since 0.8.0: the FLUX twin runs the same two-part machinery in the default suite, and CI runs both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distok_cli.files import tokenfile

from .conftest import EXAMPLES, assert_one_line_error, run_cli

WIDTHS = {"clip_l": 32, "clip_g": 64}


@pytest.fixture(scope="module")
def sdxl_run(tmp_path_factory):
    """A run trained on the SDXL twin: 10 steps, the pool fed once by rendering + BLIP estimation."""
    run = tmp_path_factory.mktemp("sdxl") / "run"
    r = run_cli(["train", "-r", "sdxl-tiny", "-o", run, "--steps", "10", "-q"])
    assert r.code == 0, r.err
    return run


@pytest.fixture(scope="module")
def sdxl_tokens(sdxl_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sdxl-tokens")
    r = run_cli(["sample", "-m", sdxl_run, "--n", "2", "-o", folder, "-q"])
    assert r.code == 0, r.err
    e = run_cli(["encode", "-m", sdxl_run, "pig:0.6,sheep:0.4", "-o", folder / "pig-sheep.distok", "-q"])
    assert e.code == 0, e.err
    return [*r.out.split(), e.out.strip()]


@pytest.fixture(scope="module")
def sdxl_pipe():
    from diffusers import StableDiffusionXLPipeline

    from distok_cli.backends.refs import resolve

    return StableDiffusionXLPipeline.from_pretrained(resolve("twin:sdxl"))


def test_the_twin_is_an_sdxl_pipeline_with_two_widths(sdxl_pipe):
    assert sdxl_pipe.text_encoder.get_input_embeddings().weight.shape[1] == WIDTHS["clip_l"]
    assert sdxl_pipe.text_encoder_2.get_input_embeddings().weight.shape[1] == WIDTHS["clip_g"]
    assert sdxl_pipe.unet.config.cross_attention_dim == 96
    assert type(sdxl_pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_trained_tokens_have_both_parts_and_the_space_names_both_encoders(sdxl_run, sdxl_tokens, sdxl_pipe):
    from distok_cli.backends.textside import TextSide
    from distok_cli.files.space import space_fingerprint

    ckpt = json.loads(run_cli(["inspect", sdxl_run, "--json"]).out)
    parts = ckpt["config"]["token_space"]["parts"]
    assert [(p["name"], p["dim"], p["subfolder"]) for p in parts] == [
        ("clip_l", 32, "text_encoder"),
        ("clip_g", 64, "text_encoder_2"),
    ]
    # each part's fingerprint is its own encoder's matrix (no placeholder rows), in that order
    for p, enc in zip(parts, (sdxl_pipe.text_encoder, sdxl_pipe.text_encoder_2)):
        assert p["fingerprint"] == space_fingerprint(enc.get_input_embeddings().weight.detach().half().numpy())
    assert TextSide  # the per-encoder hook class the SDXL text side is made of
    for path in sdxl_tokens:
        tok = tokenfile.load(path)
        assert tok.layout == (("clip_l", 32), ("clip_g", 64)) and tok.dim == 96
        from safetensors.numpy import load_file

        assert {k: v.shape for k, v in load_file(path).items()} == {"clip_l": (1, 32), "clip_g": (1, 64)}
    # one pool concept admitted during training is a two-part token too
    pool = sorted((Path(sdxl_run) / "pool").glob("*.distok"))
    assert pool and all(tokenfile.load(p).layout == (("clip_l", 32), ("clip_g", 64)) for p in pool)


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_encode_class_token_is_the_residual_mix_of_both_parts(sdxl_run, tmp_path):
    """A one-class token of an untrained residual model is exactly t_c = [t_c in L | t_c in G]."""
    from distok_cli.backends.sdxl import load_text_side
    from distok_cli.files import checkpoint

    ckpt = checkpoint.load(sdxl_run)
    text = load_text_side("twin:sdxl", "cpu", None)
    t = text.class_embeddings(["pig"]).numpy()[0]
    np.testing.assert_allclose(ckpt.class_embeddings[ckpt.classes.index("pig")], t, rtol=0, atol=1e-6)
    l_only = text.sides[0].class_embeddings(["pig"]).numpy()[0]
    np.testing.assert_allclose(t[:32], l_only, rtol=0, atol=1e-6)


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_render_estimate_and_from_on_two_part_tokens(sdxl_tokens, tmp_path):
    from PIL import Image

    out = tmp_path / "r"
    r = run_cli(
        ["render", sdxl_tokens[-1], "a photo of a <>", "a plush toy of a <>", "--seeds", "0-1", "-o", out, "-q"]
    )
    assert r.code == 0, r.err
    paths = r.out.split()
    assert len(paths) == 4
    with Image.open(paths[2]) as im:
        meta = json.loads(im.text["distok"])
        assert im.size == (64, 64)
    assert meta["backend"] == "sdxl" and meta["models"] == {"sdxl": "twin:sdxl"} and meta["recipe"] == "sdxl-tiny"
    again = run_cli(["render", "--from", paths[2], "-o", tmp_path / "again", "-q"])
    assert again.code == 0, again.err
    with Image.open(again.out.strip()) as a, Image.open(paths[2]) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # the token changes the picture: another token, same prompt and seed, another image
    other = run_cli(["render", sdxl_tokens[0], "a plush toy of a <>", "--seed", "0", "-o", tmp_path / "o", "-q"])
    with Image.open(other.out.strip()) as a, Image.open(paths[2]) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    # estimate --write: BLIP on the SDXL renders, stored in the two-part file without touching the vector
    import shutil

    p = tmp_path / "t.distok"
    shutil.copy(sdxl_tokens[-1], p)
    before = tokenfile.load(p)
    w = run_cli(["estimate", "--write", "-q", "--images", "1", p])
    assert w.code == 0, w.err
    after = tokenfile.load(p)
    assert (
        after.id == before.id
        and after.layout == before.layout
        and after.estimate["estimator"] == "blip-itm:twin:blip-itm"
    )
    t = run_cli(["estimate", "--estimator", "text", "--json", "-q", p])
    assert t.code == 0, t.err
    dist = json.loads(t.out)["distribution"]
    assert (
        set(dist) == {"cat", "dog", "pig", "sheep", "snake", "fox", "owl", "frog"}
        and abs(sum(dist.values()) - 1) < 1e-6
    )


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_export_loads_into_the_sdxl_pipeline_with_diffusers_own_loader(sdxl_tokens, sdxl_pipe, tmp_path):
    """`export --to diffusers` writes exactly clip_l and clip_g; load_textual_inversion, called twice as
    diffusers documents, puts each part into its own encoder (the other way round fails: widths differ)."""
    import torch
    from safetensors.torch import load_file

    r = run_cli(["export", sdxl_tokens[-1], "--to", "diffusers", "-o", tmp_path])
    assert r.code == 0, r.err
    path = r.out.strip()
    name = Path(path).stem
    assert f'pipe.load_textual_inversion(sd["clip_g"], token="{name}", text_encoder=pipe.text_encoder_2' in r.err
    sd = load_file(path)
    assert sorted(sd) == ["clip_g", "clip_l"]
    src = tokenfile.load(sdxl_tokens[-1])
    sdxl_pipe.load_textual_inversion(
        sd["clip_g"], token=name, text_encoder=sdxl_pipe.text_encoder_2, tokenizer=sdxl_pipe.tokenizer_2
    )
    sdxl_pipe.load_textual_inversion(
        sd["clip_l"], token=name, text_encoder=sdxl_pipe.text_encoder, tokenizer=sdxl_pipe.tokenizer
    )
    try:
        for enc, tok, part in (
            (sdxl_pipe.text_encoder, sdxl_pipe.tokenizer, "clip_l"),
            (sdxl_pipe.text_encoder_2, sdxl_pipe.tokenizer_2, "clip_g"),
        ):
            row = enc.get_input_embeddings().weight[tok.convert_tokens_to_ids(name)].detach().numpy()
            np.testing.assert_array_equal(row, src.part_vectors()[part])
        with pytest.raises(ValueError):  # swapped: clip_g (64) into CLIP-L (32)
            sdxl_pipe.load_textual_inversion(
                sd["clip_g"], token=name + "-x", text_encoder=sdxl_pipe.text_encoder, tokenizer=sdxl_pipe.tokenizer
            )
        image = sdxl_pipe(
            f"a photo of a {name}",
            num_inference_steps=2,
            height=64,
            width=64,
            generator=torch.Generator().manual_seed(0),
        ).images[0]
        assert image.size == (64, 64)
    finally:
        sdxl_pipe.unload_textual_inversion(name, text_encoder=sdxl_pipe.text_encoder, tokenizer=sdxl_pipe.tokenizer)
        sdxl_pipe.unload_textual_inversion(name, text_encoder=sdxl_pipe.text_encoder_2, tokenizer=sdxl_pipe.tokenizer_2)


def test_export_for_sdxl_tools_writes_exactly_clip_l_and_clip_g():
    """The golden SDXL export (ComfyUI, float16): two F16 tensors, no emb_params (InvokeAI would take SD 1.x)."""
    import struct

    data = (EXAMPLES / "pig55-sheep25-snake20-952008.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__")
    assert {k: (v["dtype"], v["shape"]) for k, v in header.items()} == {
        "clip_l": ("F16", [1, 768]),
        "clip_g": ("F16", [1, 1280]),
    }
    assert json.loads(meta["distok.export"])["target"] == "comfyui"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["export", str(EXAMPLES / "pig-sheep-snake.distok"), "--to", "comfyui", "--base", "sdxl"],
            "is a one-part 768-d token; SDXL embeddings hold clip_l (768) + clip_g (1280): export it for SD 1.x "
            "(--base sd1), or train on SDXL (--recipe sdxl-animals) and encode the distribution there",
        ),
        (
            ["export", str(EXAMPLES / "sdxl-pig-sheep-snake.distok"), "--to", "a1111", "--base", "sd1"],
            "is an SDXL token (clip_l + clip_g); SD 1.x embeddings hold one 768-d vector: export it for SDXL "
            "(--base sdxl), or train on SD 1.x (--recipe sd15-animals) and encode the distribution there",
        ),
        (
            ["export", str(EXAMPLES / "sdxl-pig-sheep-snake.distok"), "--to", "a1111", "--base", "sdxl2"],
            "--base must be auto, sd1, sdxl or flux, got 'sdxl2'",
        ),
        (
            ["diff", str(EXAMPLES / "sdxl-pig-sheep-snake.distok"), str(EXAMPLES / "pig-sheep-snake.distok")],
            "cannot compare tokens of different token spaces (clip_l (768) + clip_g (1280) vs one 768-d vector)",
        ),
    ],
)
def test_mixing_one_part_and_two_part_tokens_is_refused(args, message, tmp_path):
    r = run_cli([*args, "-o", tmp_path] if args[0] == "export" else args)
    assert_one_line_error(r, 2, message)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_twin_tokens_are_refused_for_tools_that_cannot_load_the_twin(sdxl_tokens, tmp_path):
    r = run_cli(["export", sdxl_tokens[-1], "--to", "comfyui", "-o", tmp_path])
    assert_one_line_error(r, 2, "was made with a random-weight twin (twin:sdxl): it means nothing in ComfyUI")


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_composition_diff_and_inspect_handle_parts(sdxl_run, sdxl_tokens, tmp_path):
    pig_sheep = sdxl_tokens[-1]
    r = run_cli(["encode", "-m", sdxl_run, f"{pig_sheep}:0.5,cat:0.5", "-o", tmp_path / "c.distok", "-q"])
    assert r.code == 0, r.err
    comp = tokenfile.load(r.out.strip())
    assert comp.source["kind"] == "composition" and comp.layout == (("clip_l", 32), ("clip_g", 64))
    assert comp.source["distribution"] == pytest.approx({"cat": 0.5, "pig": 0.3, "sheep": 0.2})
    # a one-part token cannot join a two-part model's composition
    bad = run_cli(
        ["encode", "-m", sdxl_run, f"{EXAMPLES / 'pig-sheep-snake.distok'}:0.5,cat:0.5", "-o", tmp_path / "x.distok"]
    )
    assert_one_line_error(bad, 2, "token has one 768-d vector, twin:sdxl expects clip_l (32) + clip_g (64)")
    d = json.loads(run_cli(["diff", pig_sheep, r.out.strip(), "--json"]).out)
    a, b = tokenfile.load(pig_sheep), comp
    for name, (lo, hi) in {"clip_l": (0, 32), "clip_g": (32, 96)}.items():
        va, vb = a.vector[lo:hi].astype(np.float64), b.vector[lo:hi].astype(np.float64)
        assert d["parts"][name]["cosine"] == pytest.approx(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb), abs=1e-12)
    info = json.loads(run_cli(["inspect", pig_sheep, "--json"]).out)
    assert {k: v["dim"] for k, v in info["parts"].items()} == WIDTHS
    shown = run_cli(["inspect", pig_sheep]).out
    assert "parts clip_l (32) + clip_g (64)" in shown and "clip_g  norm" in shown


def test_a_plain_sdxl_embedding_reads_as_a_two_part_token(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "community.safetensors"
    save_file({"clip_l": np.ones((1, 768), np.float32), "clip_g": np.full((1280,), 2, np.float32)}, str(p))
    tok = tokenfile.load(p)
    assert (
        tok.plain
        and tok.layout == (("clip_l", 768), ("clip_g", 1280))
        and tok.vector[767] == 1
        and tok.vector[768] == 2
    )
    save_file({"clip_l": np.ones((2, 768), np.float32), "clip_g": np.ones((2, 1280), np.float32)}, str(p))
    r = run_cli(["inspect", p])
    assert_one_line_error(r, 2, "tensor 'clip_l' has shape [2, 768]; distok reads one vector per encoder")


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_rendering_a_two_part_token_with_a_one_part_recipe_is_refused_before_loading(sdxl_tokens):
    r = run_cli(["render", sdxl_tokens[-1], "a photo of a <>", "--recipe", "tiny"])
    assert_one_line_error(
        r, 2, "has clip_l (32) + clip_g (64); the recipe tiny renders with kandinsky21, which takes one vector"
    )


def test_the_real_sdxl_recipe_says_what_to_do_when_the_model_is_not_cached(tmp_path):
    r = run_cli(["train", "-r", "sdxl-animals", "-o", tmp_path / "run", "--steps", "1"])
    assert_one_line_error(
        r, 1, "model 'stabilityai/stable-diffusion-xl-base-1.0' is not available locally (HF_HUB_OFFLINE is set"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # the FLUX twin's gallery test covers two-part cards in the default suite (CI runs both)
def test_gallery_of_two_part_tokens_in_headless_chromium(sdxl_run, sdxl_tokens, tmp_path, monkeypatch):
    """The page shows an SDXL token's parts and offers only command lines that work for it (each one run)."""
    from .test_gallery import check_gallery_lines

    check_gallery_lines(
        sdxl_run,
        Path(sdxl_tokens[-1]).parent,
        "sdxl-tiny",
        "twin:sdxl (clip_l (32) + clip_g (64))",
        "gallery-sdxl-screenshot.png",
        tmp_path,
        monkeypatch,
    )


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_eval_scores_two_part_tokens_against_the_raw_mix_of_both_parts(sdxl_run, tmp_path):
    r = run_cli(["eval", sdxl_run, "--estimator", "text", "--styles", "none", "--json", "-q", "-o", tmp_path / "e"])
    assert r.code == 0, r.err
    rep = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert (
        json.loads(r.out)["estimator"] == rep["estimator"] == "text:twin:sdxl" and len(rep["items"]) == rep["n"] == 30
    )
    assert set(rep["baselines"]) == {"raw_mix"} and (tmp_path / "e" / "eval.png").is_file()


def test_method_and_jobs_never_name_sdxl():
    """SDXL is a backend: what is specific to it lives in backends/ and its recipes (import-linter also
    forbids method/ and jobs/ to import distok_cli.backends.sdxl)."""
    from .conftest import ROOT

    for layer in ("method", "jobs"):
        for path in (ROOT / "distok_cli" / layer).glob("*.py"):
            assert "sdxl" not in path.read_text().lower(), path


# ------------------------------------------------------------------------------------ D_tok heads


def _parted_space(widths=(("aa", 6), ("bb", 10))):
    from distok_cli.files.space import SpacePart, TokenSpace

    return TokenSpace.with_parts(
        "e", tuple(SpacePart(n, d, "fp16-sha256:" + str(i) * 64) for i, (n, d) in enumerate(widths))
    )


def test_part_heads_numpy_checkpoint_matches_torch_and_starts_at_the_mix(tmp_path):
    import torch

    from distok_cli.files import checkpoint
    from distok_cli.method.model import DisTok

    space = _parted_space()
    torch.manual_seed(0)
    m = DisTok(16, 8, 4, residual=True, parts=space.layout)
    x = torch.randn(3, 16)
    torch.testing.assert_close(m(x)[1], x)  # every head's last layer starts at zero: token = mix
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ck = m.to_checkpoint(torch.randn(5, 16), {"classes": list("abcde"), "token_space": space.to_json()})
    assert ck.config["heads"] == "parts"
    assert {k: list(v.shape) for k, v in ck.tensors.items() if k.startswith("D_tok.")} == {
        "D_tok.aa.0.weight": [8, 4],
        "D_tok.aa.0.bias": [8],
        "D_tok.aa.2.weight": [6, 8],
        "D_tok.aa.2.bias": [6],
        "D_tok.bb.0.weight": [8, 4],
        "D_tok.bb.0.bias": [8],
        "D_tok.bb.2.weight": [10, 8],
        "D_tok.bb.2.bias": [10],
    }
    z, tok = m(x)
    cz, ctok = ck.tokens(x.numpy())
    np.testing.assert_allclose(ctok, tok.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ck.decode(cz), m.decode(z).detach().numpy(), rtol=1e-5, atol=1e-5)
    # head aa writes exactly the first 6 values: zeroing head bb changes only the last 10
    with torch.no_grad():
        for p in m.D_tok["bb"].parameters():
            p.zero_()
    np.testing.assert_allclose(m.D_tok(z)[:, 6:].detach().numpy(), 0)
    ck.save(tmp_path / "m.safetensors")
    back = checkpoint.load(tmp_path / "m.safetensors")
    assert back.head_names == ["D_tok.aa", "D_tok.bb"]
    torch.testing.assert_close(
        DisTok.from_checkpoint(back)(x)[1], torch.from_numpy(back.tokens(x.numpy())[1]), rtol=1e-5, atol=1e-5
    )
    joint = checkpoint.Checkpoint(ck.tensors, {**ck.config, "heads": "joint"})
    joint.save(tmp_path / "j.safetensors")
    with pytest.raises(Exception, match="checkpoint tensors are"):
        checkpoint.load(tmp_path / "j.safetensors")


def test_part_heads_need_a_space_with_parts(tmp_path):
    r = run_cli(
        [
            "train",
            "-r",
            "tiny",
            "-o",
            tmp_path / "run",
            "--steps",
            "1",
            "--set",
            "train.heads=parts",
            "--set",
            "estimator.kind=text",
        ]
    )
    assert_one_line_error(
        r, 2, "train.heads parts needs a token space with parts; twin:kandinsky21-prior's is one vector (use joint)"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_inspect_neighbors_reads_each_part_in_its_own_encoder(sdxl_tokens, sdxl_pipe):
    r = run_cli(["inspect", sdxl_tokens[-1], "--neighbors", "1", "--json"])
    assert r.code == 0, r.err
    near = json.loads(r.out)["neighbors"]
    tok = tokenfile.load(sdxl_tokens[-1])
    for part, enc in (("clip_l", sdxl_pipe.text_encoder), ("clip_g", sdxl_pipe.text_encoder_2)):
        m = enc.get_input_embeddings().weight.detach().double().numpy()
        v = tok.part_vectors()[part].astype(np.float64)
        best = (m @ v / np.linalg.norm(m, axis=1) / np.linalg.norm(v)).max()
        assert near[part][0]["cosine"] == pytest.approx(best, abs=1e-5)


@pytest.mark.slow  # the SDXL twin's loop; the FLUX twin runs the two-part loop in the default suite
def test_encode_and_sample_of_a_two_part_model_import_no_torch(sdxl_run, tmp_path):
    code = (
        f"import sys; from distok_cli.cli.app import main; "
        f"main(['encode', 'pig:1', '-m', {str(sdxl_run)!r}, '-o', {str(tmp_path / 'p.distok')!r}, '-q', '--refine', '0']); "
        f"main(['sample', '--n', '2', '-m', {str(sdxl_run)!r}, '-o', {str(tmp_path / 's')!r}, '-q']); "
        "print([x for x in ('torch', 'diffusers', 'transformers') if x in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "[]", r.stderr[-500:]
    assert tokenfile.load(tmp_path / "p.distok").layout == (("clip_l", 32), ("clip_g", 64))


def test_the_sdxl_text_embedding_by_hand_and_its_gradient_reaches_both_parts(sdxl_pipe):
    """E = [unit(mean of [h_L | h_G] over positions 1..EOS) | unit(pooled_G)] / √2, so a cosine of E is the
    mean of the per-position cosine and the pooled cosine; a loss on E moves clip_l and clip_g."""
    import torch
    import torch.nn.functional as F

    from distok_cli.backends.sdxl import load_text_side

    text = load_text_side("twin:sdxl", "cpu", torch.float32)
    prompts = ["a photo of a cat", "a sketch of a dog"]
    e = text.encode(prompts)
    assert e.shape == (2, 32 + 64 + 64) and torch.allclose(e.norm(dim=-1), torch.ones(2))
    means, pooled = [], None
    for side in text.sides:
        ids = side.tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt").input_ids
        with torch.no_grad():
            out = side.encoder(input_ids=ids, output_hidden_states=True)
        rows = []
        for b in range(2):
            eos = int((ids[b] == side.tokenizer.eos_token_id).nonzero()[0])
            rows.append(out.hidden_states[-2][b, 1 : eos + 1].mean(0))
        means.append(torch.stack(rows))
        pooled = getattr(out, "text_embeds", None)
    pos = F.normalize(torch.cat(means, -1), dim=-1)
    pool = F.normalize(pooled, dim=-1)
    torch.testing.assert_close(e, torch.cat([pos, pool], -1) / 2**0.5, rtol=1e-4, atol=1e-5)
    cos = float(e[0] @ e[1])
    assert cos == pytest.approx(0.5 * float(pos[0] @ pos[1]) + 0.5 * float(pool[0] @ pool[1]), abs=1e-5)
    v = (0.02 * torch.randn(1, 96)).requires_grad_()
    target = text.encode(["a photo of a pig"])[0]
    loss = 1 - text.encode(["a photo of a <distok>"], v)[0] @ target
    loss.backward()
    assert v.grad[0, :32].abs().sum() > 0 and v.grad[0, 32:].abs().sum() > 0


def test_a_community_sdxl_embedding_renders_with_the_sdxl_recipe_by_default(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "community.safetensors"
    save_file({"clip_l": np.ones((1, 768), np.float32), "clip_g": np.ones((1, 1280), np.float32)}, str(p))
    r = run_cli(["render", p, "a photo of a <>", "-o", tmp_path / "r"])
    assert "using recipe sdxl-animals (the tokens have SDXL's two parts" in r.err
    assert_one_line_error(r, 1, "model 'stabilityai/stable-diffusion-xl-base-1.0' is not available locally")


@pytest.mark.slow  # renders every distribution (CI runs the slow tests too)
def test_eval_with_blip_on_sdxl_renders(sdxl_run, tmp_path):
    (tmp_path / "d.json").write_text('[{"pig": 0.5, "sheep": 0.5}, {"cat": 1}]')
    r = run_cli(
        [
            "eval",
            sdxl_run,
            "--styles",
            "none",
            "--json",
            "-q",
            "-o",
            tmp_path / "e",
            "--distributions",
            tmp_path / "d.json",
        ]
    )
    assert r.code == 0, r.err
    rep = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert rep["estimator"] == "blip-itm:twin:blip-itm" and rep["n"] == 2 and "raw_mix" in rep["baselines"]

"""FLUX.1 end to end on the twin (``--recipe flux-tiny``): train → sample/encode → render → estimate → eval →
export → diffusers' own ``load_textual_inversion`` into the FLUX pipeline, and every token tool on FLUX tokens.

The twin's CLIP-L is 48 wide and its T5 80 (no other twin has either width), its CLIP config carries the
legacy ``eos_token_id == 2`` of FLUX's real one, and its T5 matrix has rows past its tokenizer's words, as
the real T5-XXL's has: so a swap of the parts, a pool at the wrong position or a fingerprint over the wrong
rows fails here.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distok_cli.files import tokenfile

from .conftest import EXAMPLES, assert_one_line_error, run_cli

WIDTHS = {"clip_l": 48, "t5": 80}
LAYOUT = (("clip_l", 48), ("t5", 80))
GOLDEN = EXAMPLES / "flux-pig-sheep-snake.distok"
GOLDEN_COMFYUI = EXAMPLES / "pig55-sheep25-snake20-6729f1.safetensors"


@pytest.fixture(scope="module")
def flux_run(tmp_path_factory):
    """A run trained on the FLUX twin: 10 steps, the pool fed once by rendering + BLIP estimation."""
    run = tmp_path_factory.mktemp("flux") / "run"
    r = run_cli(["train", "-r", "flux-tiny", "-o", run, "--steps", "10", "-q"])
    assert r.code == 0, r.err
    return run


@pytest.fixture(scope="module")
def flux_tokens(flux_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flux-tokens")
    r = run_cli(["sample", "-m", flux_run, "--n", "2", "-o", folder, "-q"])
    assert r.code == 0, r.err
    e = run_cli(["encode", "-m", flux_run, "pig:0.6,sheep:0.4", "-o", folder / "pig-sheep.distok", "-q"])
    assert e.code == 0, e.err
    return [*r.out.split(), e.out.strip()]


@pytest.fixture
def flux_pipe():
    """A fresh twin pipeline per test: loading a token changes its tokenizers and matrices."""
    from diffusers import FluxPipeline

    from distok_cli.backends.refs import resolve

    pipe = FluxPipeline.from_pretrained(resolve("twin:flux"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_twin_is_a_flux_pipeline_shaped_like_the_real_one(flux_pipe):
    p = flux_pipe
    assert p.text_encoder.get_input_embeddings().weight.shape[1] == WIDTHS["clip_l"]
    assert p.text_encoder_2.get_input_embeddings().weight.shape == (len(p.tokenizer_2) + 8, WIDTHS["t5"])
    assert p.transformer.config.pooled_projection_dim == 48 and p.transformer.config.joint_attention_dim == 80
    assert type(p.text_encoder).__name__ == "CLIPTextModel" and type(p.text_encoder_2).__name__ == "T5EncoderModel"
    assert p.text_encoder.config.eos_token_id == 2  # the legacy value of FLUX's text_encoder/config.json


def test_trained_tokens_have_both_parts_and_each_fingerprint_covers_its_encoders_words(
    flux_run, flux_tokens, flux_pipe
):
    from safetensors.numpy import load_file

    from distok_cli.files.space import space_fingerprint

    ckpt = json.loads(run_cli(["inspect", flux_run, "--json"]).out)
    parts = ckpt["config"]["token_space"]["parts"]
    assert [(p["name"], p["dim"], p["subfolder"]) for p in parts] == [
        ("clip_l", 48, "text_encoder"),
        ("t5", 80, "text_encoder_2"),
    ]
    # CLIP-L: the whole matrix; T5: its 192 words, not the 8 spare rows after them
    clip_m = flux_pipe.text_encoder.get_input_embeddings().weight.detach()
    t5_m = flux_pipe.text_encoder_2.get_input_embeddings().weight.detach()
    assert parts[0]["fingerprint"] == space_fingerprint(clip_m.half().numpy())
    assert parts[1]["fingerprint"] == space_fingerprint(t5_m[:192].half().numpy())
    assert parts[1]["fingerprint"] != space_fingerprint(t5_m.half().numpy())
    for path in flux_tokens:
        tok = tokenfile.load(path)
        assert tok.layout == LAYOUT and tok.dim == 128
        assert {k: v.shape for k, v in load_file(path).items()} == {"clip_l": (1, 48), "t5": (1, 80)}


def test_the_flux_text_embedding_by_hand_and_its_gradient_reaches_both_parts(flux_pipe):
    """E = [unit(CLIP-L's pooled output, at EOS) | unit(masked mean of T5's last states)] / √2; CLIP-L pools
    at the EOS token even with a placeholder (whose id is larger) in the prompt; a loss on E moves both parts."""
    import torch
    import torch.nn.functional as F

    from distok_cli.backends.flux import load_text_side

    text = load_text_side("twin:flux", "cpu", torch.float32)
    prompts = ["a photo of a cat", "a watercolor sketch of a dog"]
    e = text.encode(prompts)
    assert e.shape == (2, 48 + 80) and torch.allclose(e.norm(dim=-1), torch.ones(2))
    clip, t5 = text.sides
    ids = clip.tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        h = clip.encoder(input_ids=ids).last_hidden_state
    eos = [int((row == clip.tokenizer.eos_token_id).nonzero()[0]) for row in ids]
    pooled = torch.stack([h[b, eos[b]] for b in range(2)])
    batch = t5.tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        s = t5.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    m = batch.attention_mask[..., None].float()
    mean = (s * m).sum(1) / m.sum(1)
    want = torch.cat([F.normalize(pooled, dim=-1), F.normalize(mean, dim=-1)], -1) / 2**0.5
    torch.testing.assert_close(e, want, rtol=1e-4, atol=1e-5)
    # with the token in the prompt, the pool is still the state at EOS, not at the placeholder
    v = (0.02 * torch.randn(1, 128)).requires_grad_()
    filled = "a photo of a <distok>"
    pid = clip.tokenizer(filled, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad(), clip.inject(v[:, :48].detach()):
        out = clip.encoder(input_ids=pid)
    at_eos = int((pid[0] == clip.tokenizer.eos_token_id).nonzero()[0])
    at_token = int((pid[0] == clip.ids[0]).nonzero()[0])
    torch.testing.assert_close(out.pooler_output[0], out.last_hidden_state[0, at_eos])
    assert not torch.allclose(out.pooler_output[0], out.last_hidden_state[0, at_token])
    target = text.encode(["a photo of a pig"])[0]
    loss = 1 - text.encode([filled], v)[0] @ target
    loss.backward()
    assert v.grad[0, :48].abs().sum() > 0 and v.grad[0, 48:].abs().sum() > 0


def test_encode_class_token_is_the_residual_mix_of_both_parts(flux_run):
    """A one-class token's t_c = [t_c in CLIP-L | t_c in T5], each the mean of the name's pieces."""
    from distok_cli.backends.flux import load_text_side
    from distok_cli.files import checkpoint

    ckpt = checkpoint.load(flux_run)
    text = load_text_side("twin:flux", "cpu", None)
    t = text.class_embeddings(["pig"]).numpy()[0]
    np.testing.assert_allclose(ckpt.class_embeddings[ckpt.classes.index("pig")], t, rtol=0, atol=1e-6)
    t5 = text.sides[1]
    ids = t5.tokenizer("pig", add_special_tokens=False).input_ids
    table = t5.encoder.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_allclose(t[48:], table[ids].mean(0), rtol=0, atol=1e-6)


def test_render_estimate_and_from_on_flux_tokens(flux_tokens, tmp_path):
    import shutil

    from PIL import Image

    out = tmp_path / "r"
    r = run_cli(
        ["render", flux_tokens[-1], "a photo of a <>", "a plush toy of a <>", "--seeds", "0-1", "-o", out, "-q"]
    )
    assert r.code == 0, r.err
    paths = r.out.split()
    assert len(paths) == 4
    with Image.open(paths[2]) as im:
        meta = json.loads(im.text["distok"])
        assert im.size == (32, 32)
    assert meta["backend"] == "flux" and meta["models"] == {"flux": "twin:flux"} and meta["recipe"] == "flux-tiny"
    assert meta["render"]["max_sequence_length"] == 32 and meta["dtype"] == "float32"
    again = run_cli(["render", "--from", paths[2], "-o", tmp_path / "again", "-q"])
    assert again.code == 0, again.err
    with Image.open(again.out.strip()) as a, Image.open(paths[2]) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    other = run_cli(["render", flux_tokens[0], "a plush toy of a <>", "--seed", "0", "-o", tmp_path / "o", "-q"])
    with Image.open(other.out.strip()) as a, Image.open(paths[2]) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    p = tmp_path / "t.distok"
    shutil.copy(flux_tokens[-1], p)
    before = tokenfile.load(p)
    w = run_cli(["estimate", "--write", "-q", "--images", "1", p])
    assert w.code == 0, w.err
    after = tokenfile.load(p)
    assert after.id == before.id and after.layout == LAYOUT and after.estimate["estimator"] == "blip-itm:twin:blip-itm"
    t = run_cli(["estimate", "--estimator", "text", "--json", "-q", p])
    assert t.code == 0, t.err
    est = json.loads(t.out)
    assert est["estimator"] == "text:twin:flux" and sum(est["distribution"].values()) == pytest.approx(1)


def _diffusers_calls(usage: str) -> str:
    """The Python statements of `export --to diffusers`'s line, as a user would paste them."""
    code = re.search(r"^distok: diffusers: (.*); then write \S+ in a prompt", usage, re.M)
    assert code, usage
    return code.group(1)


def test_export_loads_into_the_flux_pipeline_with_the_printed_calls(flux_tokens, flux_pipe, tmp_path):
    """`export --to diffusers` writes clip_l and t5 and prints the calls; pasted as printed, diffusers' own
    loader puts each part into its own encoder, CLIP-L then pools at EOS, and the pipeline renders."""
    import safetensors.torch
    import torch

    r = run_cli(["export", flux_tokens[-1], "--to", "diffusers", "-o", tmp_path])
    assert r.code == 0, r.err
    path = r.out.strip()
    name = Path(path).stem
    assert sorted(safetensors.torch.load_file(path)) == ["clip_l", "t5"]
    code = _diffusers_calls(r.err)
    assert code.count("load_textual_inversion(") == 2
    pipe = flux_pipe
    exec(code, {"safetensors": safetensors, "pipe": pipe})
    src = tokenfile.load(flux_tokens[-1]).part_vectors()
    for enc, tok, part in (
        (pipe.text_encoder, pipe.tokenizer, "clip_l"),
        (pipe.text_encoder_2, pipe.tokenizer_2, "t5"),
    ):
        row = enc.get_input_embeddings().weight[tok.convert_tokens_to_ids(name)].detach().numpy()
        np.testing.assert_array_equal(row, src[part])
    ids = pipe.tokenizer(f"a photo of a {name}", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        out = pipe.text_encoder(ids)
    eos = int((ids[0] == pipe.tokenizer.eos_token_id).nonzero()[0])
    torch.testing.assert_close(out.pooler_output[0], out.last_hidden_state[0, eos])
    # what the pipeline's encoders now read for the word is what distok trained: E of the prompt with the
    # loaded word equals E of the prompt with the token injected by distok's hooks
    from distok_cli.backends.flux import FluxTextSide

    text = FluxTextSide((pipe.tokenizer, pipe.tokenizer_2), (pipe.text_encoder, pipe.text_encoder_2), "twin:flux")
    vec = torch.as_tensor(tokenfile.load(flux_tokens[-1]).vector)[None]
    with torch.no_grad():
        torch.testing.assert_close(
            text.encode([f"a photo of a {name}"]), text.encode(["a photo of a <distok>"], vec), rtol=1e-5, atol=1e-6
        )
    with pytest.raises(ValueError):  # swapped: t5 (80) into CLIP-L (48)
        pipe.load_textual_inversion(
            safetensors.torch.load_file(path)["t5"],
            token="x-1",
            text_encoder=pipe.text_encoder,
            tokenizer=pipe.tokenizer,
        )
    image = pipe(f"a photo of a {name}", num_inference_steps=2, height=32, width=32, max_sequence_length=32).images[0]
    assert image.size == (32, 32)


def test_the_api_inject_puts_each_part_into_its_own_encoder(flux_tokens, flux_pipe):
    from distok_cli import inject

    tok = tokenfile.load(flux_tokens[-1])
    inject(flux_pipe, tok, "my-token")
    for enc, t, part in (
        (flux_pipe.text_encoder, flux_pipe.tokenizer, "clip_l"),
        (flux_pipe.text_encoder_2, flux_pipe.tokenizer_2, "t5"),
    ):
        row = enc.get_input_embeddings().weight[t.convert_tokens_to_ids("my-token")].detach().numpy()
        np.testing.assert_array_equal(row, tok.part_vectors()[part])
    assert flux_pipe.text_encoder.eos_token_id == flux_pipe.tokenizer.eos_token_id  # CLIP-L pools at EOS
    with pytest.raises(Exception, match="was made for another text encoder"):
        sdxl_like = tokenfile.Token(
            vector=tok.vector,
            space=tok.space.__class__.with_parts(
                "x", tuple(p.__class__(p.name, p.dim, "fp16-sha256:" + "0" * 64, p.subfolder) for p in tok.space.parts)
            ),
            source=tok.source,
        )
        inject(flux_pipe, sdxl_like, "other-token")


def test_the_comfyui_golden_export_holds_clip_l_and_t5xxl_as_format_2_1():
    """ComfyUI reads FLUX's T5 part under the key t5xxl: the export renames it, records the renaming and
    is written as format 2.1; distok reads it back as the same two-part token."""
    data = GOLDEN_COMFYUI.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__")
    assert {k: (v["dtype"], v["shape"]) for k, v in header.items()} == {
        "clip_l": ("F16", [1, 768]),
        "t5xxl": ("F16", [1, 4096]),
    }
    assert meta["distok.format_version"] == "2.1" and meta["modelspec.architecture"] == "flux-1/textual-inversion"
    assert json.loads(meta["distok.export"])["tensor_names"] == {"t5": "t5xxl"}
    back, src = tokenfile.load(GOLDEN_COMFYUI), tokenfile.load(GOLDEN)
    assert back.layout == src.layout == (("clip_l", 768), ("t5", 4096))
    np.testing.assert_array_equal(back.vector, src.vector.astype(np.float16).astype(np.float32))
    # exported again for diffusers, the T5 part carries its own name again (format 2.0)
    from distok_cli.files import export

    again = export.exported(back, export.TARGETS["diffusers"], "pig-1", "float32", "flux")
    assert (
        set(tokenfile.tensors_of(again)) == {"clip_l", "t5"}
        and tokenfile.metadata_for(again)["distok.format_version"] == "2.0"
    )


def test_export_of_the_golden_flux_token_for_comfyui_writes_the_golden_bytes(tmp_path):
    r = run_cli(["export", GOLDEN, "--to", "comfyui", "--dtype", "float16", "-o", tmp_path])
    assert r.code == 0, r.err
    assert Path(r.out.strip()).read_bytes() == GOLDEN_COMFYUI.read_bytes()
    assert "write embedding:pig55-sheep25-snake20-6729f1 in a prompt (a FLUX.1 model)" in r.err


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [GOLDEN, "--to", "a1111"],
            "is a FLUX.1 token (clip_l + t5): AUTOMATIC1111 and Forge load no T5 embedding (Forge #2101 is open), so "
            "the t5 part would be lost; use --to comfyui or --to diffusers",
        ),
        (
            [GOLDEN, "--to", "invokeai"],
            "is a FLUX.1 token (clip_l + t5): InvokeAI loads textual inversions for SD 1.x, SD 2.x and SDXL only",
        ),
        (
            [GOLDEN, "--to", "comfyui", "--base", "sdxl"],
            "is a FLUX.1 token (clip_l + t5); SDXL embeddings hold clip_l (768) + clip_g (1280): export it for "
            "FLUX.1 (--base flux), or train on SDXL (--recipe sdxl-animals)",
        ),
        (
            [GOLDEN, "--to", "diffusers", "--base", "sd1"],
            "is a FLUX.1 token (clip_l + t5); SD 1.x embeddings hold one 768-d vector: export it for FLUX.1",
        ),
        (
            [EXAMPLES / "pig-sheep-snake.distok", "--to", "comfyui", "--base", "flux"],
            "is a one-part 768-d token; FLUX.1 embeddings hold clip_l (768) + t5 (4096): export it for SD 1.x "
            "(--base sd1), or train on FLUX.1 (--recipe flux-animals) and encode the distribution there",
        ),
        (
            [EXAMPLES / "sdxl-pig-sheep-snake.distok", "--to", "comfyui", "--base", "flux"],
            "is an SDXL token (clip_l + clip_g); FLUX.1 embeddings hold clip_l (768) + t5 (4096)",
        ),
    ],
)
def test_flux_exports_refused_with_one_line_and_nothing_written(args, message, tmp_path):
    r = run_cli(["export", *args, "-o", tmp_path])
    assert_one_line_error(r, 2, message)
    assert not list(tmp_path.iterdir())


def test_twin_tokens_are_refused_for_comfyui(flux_tokens, tmp_path):
    r = run_cli(["export", flux_tokens[-1], "--to", "comfyui", "-o", tmp_path])
    assert_one_line_error(r, 2, "was made with a random-weight twin (twin:flux): it means nothing in ComfyUI")


@pytest.mark.parametrize("t5_key", ["t5", "t5xxl"])
def test_a_plain_flux_embedding_reads_as_a_two_part_token(t5_key, tmp_path):
    """diffusers' FLUX training writes clip_l + t5, ComfyUI users share clip_l + t5xxl: both read as FLUX."""
    from safetensors.numpy import save_file

    p = tmp_path / "community.safetensors"
    save_file({"clip_l": np.ones((1, 768), np.float32), t5_key: np.full((4096,), 2, np.float32)}, str(p))
    tok = tokenfile.load(p)
    assert tok.plain and tok.layout == (("clip_l", 768), ("t5", 4096)) and tok.vector[767] == 1 and tok.vector[768] == 2
    save_file({"clip_l": np.ones((1, 768), np.float32), t5_key: np.ones((1, 4095), np.float32)}, str(p))
    assert_one_line_error(run_cli(["inspect", p]), 2, f"tensor '{t5_key}' has shape [1, 4095]; distok reads one vector")


def test_a_community_flux_embedding_renders_with_the_flux_recipe_by_default(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "community.safetensors"
    save_file({"clip_l": np.ones((1, 768), np.float32), "t5xxl": np.ones((1, 4096), np.float32)}, str(p))
    r = run_cli(["render", p, "a photo of a <>", "-o", tmp_path / "r"])
    assert "using recipe flux-animals (the tokens have FLUX.1's two parts" in r.err
    assert_one_line_error(r, 1, "model 'black-forest-labs/FLUX.1-schnell' is not available locally")


def test_composition_diff_sweep_and_inspect_handle_flux_parts(flux_run, flux_tokens, tmp_path):
    pig_sheep = flux_tokens[-1]
    r = run_cli(["encode", "-m", flux_run, f"{pig_sheep}:0.5,cat:0.5", "-o", tmp_path / "c.distok", "-q"])
    assert r.code == 0, r.err
    comp = tokenfile.load(r.out.strip())
    assert comp.source["kind"] == "composition" and comp.layout == LAYOUT
    assert comp.source["distribution"] == pytest.approx({"cat": 0.5, "pig": 0.3, "sheep": 0.2})
    bad = run_cli(["encode", "-m", flux_run, f"{GOLDEN}:0.5,cat:0.5", "-o", tmp_path / "x.distok"])
    assert_one_line_error(bad, 2, "token has clip_l (768) + t5 (4096), twin:flux expects clip_l (48) + t5 (80)")
    d = json.loads(run_cli(["diff", pig_sheep, r.out.strip(), "--json"]).out)
    a, b = tokenfile.load(pig_sheep), comp
    for name, (lo, hi) in {"clip_l": (0, 48), "t5": (48, 128)}.items():
        va, vb = a.vector[lo:hi].astype(np.float64), b.vector[lo:hi].astype(np.float64)
        assert d["parts"][name]["cosine"] == pytest.approx(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb), abs=1e-12)
    s = run_cli(["sweep", pig_sheep, r.out.strip(), "--steps", "3", "--slerp", "-o", tmp_path / "sw", "-q"])
    assert s.code == 0, s.err
    ends = [tokenfile.load(p) for p in s.out.split()]
    assert [t.id for t in (ends[0], ends[-1])] == [a.id, b.id] and ends[1].layout == LAYOUT
    assert ends[1].source["sweep"]["interpolation"] == "slerp" and ends[1].source["sweep"]["path"] == "latent"
    shown = run_cli(["inspect", pig_sheep]).out
    assert "parts clip_l (48) + t5 (80)" in shown and "t5  norm" in shown


def test_eval_scores_flux_tokens_against_the_raw_mix_of_both_parts(flux_run, tmp_path):
    r = run_cli(["eval", flux_run, "--estimator", "text", "--styles", "none", "--json", "-q", "-o", tmp_path / "e"])
    assert r.code == 0, r.err
    rep = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert json.loads(r.out)["estimator"] == rep["estimator"] == "text:twin:flux" and rep["n"] == 30
    assert set(rep["baselines"]) == {"raw_mix"} and (tmp_path / "e" / "eval.png").is_file()


def test_encode_and_sample_of_a_flux_model_import_no_torch(flux_run, tmp_path):
    code = (
        f"import sys; from distok_cli.cli.app import main; "
        f"main(['encode', 'pig:1', '-m', {str(flux_run)!r}, '-o', {str(tmp_path / 'p.distok')!r}, '-q', '--refine', '0']); "
        f"main(['sample', '--n', '2', '-m', {str(flux_run)!r}, '-o', {str(tmp_path / 's')!r}, '-q']); "
        "print([x for x in ('torch', 'diffusers', 'transformers') if x in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "[]", r.stderr[-500:]
    assert tokenfile.load(tmp_path / "p.distok").layout == LAYOUT


def test_flux_refuses_a_scheduler_and_other_spaces_before_loading(flux_tokens, tmp_path):
    r = run_cli(["render", flux_tokens[-1], "a photo of a <>", "--set", "render.scheduler=euler", "-o", tmp_path])
    assert_one_line_error(r, 2, "render.scheduler 'euler': FLUX samples with its own flow-matching scheduler")
    r = run_cli(["render", flux_tokens[-1], "a photo of a <>", "--recipe", "sdxl-tiny", "-o", tmp_path])
    assert_one_line_error(r, 2, "has clip_l (48) + t5 (80); the recipe sdxl-tiny renders with sdxl, which takes")
    assert not list(tmp_path.iterdir())


def test_the_real_flux_recipe_says_what_to_do_when_the_model_is_not_cached(tmp_path):
    r = run_cli(["train", "-r", "flux-animals", "-o", tmp_path / "run", "--steps", "1"])
    assert_one_line_error(
        r, 1, "model 'black-forest-labs/FLUX.1-schnell' is not available locally (HF_HUB_OFFLINE is set"
    )
    assert not (tmp_path / "run").exists()


def test_flux_on_cuda_defaults_to_bfloat16():
    """T5 overflows in float16: --dtype auto means bfloat16 on CUDA for FLUX, float16 for the others."""
    import torch

    from distok_cli.backends import registry
    from distok_cli.backends.loading import pick_dtype

    assert registry.get("flux").cuda_dtype == "bfloat16" and registry.get("sdxl").cuda_dtype == "float16"
    assert pick_dtype("auto", "cuda", registry.get("flux").cuda_dtype) is torch.bfloat16
    assert pick_dtype("auto", "cpu", "bfloat16") is torch.float32


def test_gallery_of_flux_tokens_in_headless_chromium(flux_run, flux_tokens, tmp_path, monkeypatch):
    """The page shows a FLUX token's parts and offers only command lines that work for it (each one run)."""
    from .test_gallery import check_gallery_lines

    check_gallery_lines(
        flux_run,
        Path(flux_tokens[-1]).parent,
        "flux-tiny",
        "twin:flux (clip_l (48) + t5 (80))",
        "gallery-flux-screenshot.png",
        tmp_path,
        monkeypatch,
    )

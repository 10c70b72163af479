"""`distok export`: files the SD 1.x tools load (facts in ../shared/notes/peer-loaders.md), read back by
distok with their provenance, refused where they would mean nothing."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file

from distok_cli.files import checkpoint, tokenfile
from distok_cli.files.space import TokenSpace

from .conftest import EXAMPLES, assert_one_line_error, make_token, run_cli

PIG = str(EXAMPLES / "pig-sheep-snake.distok")
CLIP_L = TokenSpace("kandinsky-community/kandinsky-2-1-prior", 768, "fp16-sha256:" + "4" * 64, "text_encoder")


@pytest.fixture(scope="module")
def clip_l_model(tmp_path_factory):
    """A checkpoint in CLIP ViT-L/14's space (random weights, numpy): what `distok train` on the real
    Kandinsky 2.1 prior would give, as far as export can tell."""
    rng = np.random.default_rng(1)
    d, h, w, classes = 768, 32, 4, ["cat", "dog", "pig"]
    shapes = {
        "E_dis.0.weight": (h, d),
        "E_dis.0.bias": (h,),
        "E_dis.2.weight": (w, h),
        "E_dis.2.bias": (w,),
        "D_tok.0.weight": (h, w),
        "D_tok.0.bias": (h,),
        "D_tok.2.weight": (d, h),
        "D_tok.2.bias": (d,),
        "class_embeddings": (len(classes), d),
    }
    tensors = {k: (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    config = {
        "classes": classes,
        "dim": d,
        "hidden": h,
        "latent_dim": w,
        "activation": "gelu_tanh",
        "token_space": CLIP_L.to_json(),
        "fusion_input": "sum",
        "recipe": "kandinsky21-animals",
        "step": 100,
    }
    path = tmp_path_factory.mktemp("clip-l") / "model.safetensors"
    checkpoint.Checkpoint(tensors, config).save(path)
    return path


@pytest.fixture(scope="module")
def made_tokens(clip_l_model, tmp_path_factory):
    """Every kind of 768-d token sample and encode write: sampled (three priors) and encoded."""
    folder = tmp_path_factory.mktemp("made")
    paths = []
    for prior in ("gaussian", "laplace", "cauchy"):
        r = run_cli(["sample", "--n", "2", "--prior", prior, "-m", clip_l_model, "-o", folder, "-q"])
        assert r.code == 0, r.err
        paths += r.out.split()
    r = run_cli(["encode", "cat:0.6,dog:0.4", "-m", clip_l_model, "-o", folder / "cat-dog.distok", "-q"])
    assert r.code == 0, r.err
    return paths + r.out.split()


USAGE = {
    "comfyui": "distok: ComfyUI: put {path} in ComfyUI/models/embeddings/ and write embedding:{name} in a prompt (an SD 1.x model)",
    "a1111": "distok: AUTOMATIC1111: put {path} in stable-diffusion-webui/embeddings/ and write {name} in a prompt (an SD 1.x model)",
    "invokeai": "distok: InvokeAI: install {path} by path (Models > Add Model) and write <{name}> in a prompt (an SD 1.x model)",
    "diffusers": 'distok: diffusers: pipe.load_textual_inversion("{path}", token="{name}"), then write {name} in a prompt',
}


@pytest.mark.parametrize("target", list(USAGE))
def test_export_writes_name_safetensors_and_says_how_to_use_it(tmp_path, target):
    r = run_cli(["export", PIG, "--to", target, "-o", tmp_path])
    path = str(tmp_path / "pig55-sheep25-snake20-447da2.safetensors")
    assert r.code == 0 and r.out == path + "\n"
    assert r.err == USAGE[target].format(path=path, name="pig55-sheep25-snake20-447da2") + "\n"
    tok = tokenfile.load(path)
    src = tokenfile.load(PIG)
    assert tok.exported == {
        "target": target,
        "name": "pig55-sheep25-snake20-447da2",
        "dtype": "float32",
        "source_id": src.id,
    }
    assert (tok.source, tok.model, tok.space, tok.id) == (src.source, src.model, src.space, src.id)


def test_exported_files_follow_every_fact_the_peer_loaders_rely_on(tmp_path, made_tokens):
    """Suffix .safetensors (ComfyUI/A1111/InvokeAI read nothing else as safetensors), exactly one tensor
    `emb_params` of shape [1, 768] (InvokeAI's probe and SD 1.x width; [768] fails there), the stem is the
    trigger word, values exactly the token's."""
    for dtype, np_dtype in (("float32", np.float32), ("float16", np.float16)):
        out = tmp_path / dtype
        r = run_cli(["export", *made_tokens, "--to", "comfyui", "--dtype", dtype, "-o", out, "-q"])
        assert r.code == 0, r.err
        written = r.out.split()
        assert len(written) == len(made_tokens) == len(set(written))
        for src_path, path in zip(made_tokens, written):
            assert path.endswith(".safetensors") and re.fullmatch(
                r"[a-z0-9][a-z0-9_-]{2,63}", path.rsplit("/", 1)[1][:-12]
            )
            tensors = load_file(path)  # the real safetensors library, as the tools read it
            assert list(tensors) == ["emb_params"]
            assert tensors["emb_params"].shape == (1, 768) and tensors["emb_params"].dtype == np_dtype
            vec = tokenfile.load(src_path).vector
            np.testing.assert_array_equal(tensors["emb_params"][0], vec.astype(np_dtype))
            (n,) = struct.unpack("<Q", open(path, "rb").read(8))
            header = json.loads(open(path, "rb").read(8 + n)[8:])
            assert header["emb_params"]["dtype"] == {"float32": "F32", "float16": "F16"}[dtype]


def test_every_made_token_loads_in_diffusers_load_textual_inversion(tmp_path, made_tokens):
    """diffusers' real loader, on an SD 1.x pipeline (the tiny twin, 768 wide): one new token named as the
    file, its embedding row exactly the exported values, in the text encoder's dtype."""
    from diffusers import StableDiffusionPipeline

    from distok_cli.backends.refs import resolve

    pipe = StableDiffusionPipeline.from_pretrained(resolve("twin:sd15"), safety_checker=None)
    emb = pipe.text_encoder.get_input_embeddings()
    for dtype in ("float32", "float16"):
        r = run_cli(["export", *made_tokens, "--to", "diffusers", "--dtype", dtype, "-o", tmp_path / dtype, "-q"])
        assert r.code == 0, r.err
        for src_path, path in zip(made_tokens, r.out.split()):
            name = path.rsplit("/", 1)[1][: -len(".safetensors")]
            before = len(pipe.tokenizer)
            pipe.load_textual_inversion(path, token=name)
            ids = pipe.tokenizer(name, add_special_tokens=False).input_ids
            assert len(pipe.tokenizer) == before + 1 and ids == [pipe.tokenizer.convert_tokens_to_ids(name)]
            row = pipe.text_encoder.get_input_embeddings().weight[ids[0]].detach()
            assert row.dtype == emb.weight.dtype and row.shape == (768,)
            want = tokenfile.load(src_path).vector.astype(np.float16 if dtype == "float16" else np.float32)
            np.testing.assert_array_equal(row.numpy(), want.astype(np.float32))
        pipe.unload_textual_inversion()
    # diffusers also reads a .distok file as it is (spec §1.5): only the name keeps it out of the other tools.
    pipe.load_textual_inversion(made_tokens[0], token="raw-distok-1")
    assert "raw-distok-1" in pipe.tokenizer.get_vocab()


def test_distok_reads_an_export_back_with_its_provenance(tmp_path):
    r = run_cli(
        ["export", str(EXAMPLES / "sampled-cauchy.distok"), "--to", "a1111", "--dtype", "float16", "-o", tmp_path, "-q"]
    )
    assert r.code == 0, r.err
    info = json.loads(run_cli(["inspect", "--json", r.out.strip()]).out)
    src = tokenfile.load(EXAMPLES / "sampled-cauchy.distok")
    assert info["source"] == src.source and info["estimate"] == src.estimate and info["model"] == src.model
    assert info["export"] == {"target": "a1111", "name": "cauchy-s0-i3-401df5", "dtype": "float16", "source_id": src.id}
    assert info["id"] == tokenfile.content_id(src.vector.astype(np.float16).astype(np.float32))
    assert "exported  for a1111 as cauchy-s0-i3-401df5 (float16)" in run_cli(["inspect", r.out.strip()]).out


def test_the_golden_export_is_what_the_command_writes(tmp_path):
    r = run_cli(["export", PIG, "--to", "comfyui", "--dtype", "float16", "-o", tmp_path, "-q"])
    assert open(r.out.strip(), "rb").read() == (EXAMPLES / "pig55-sheep25-snake20-447da2.safetensors").read_bytes()


def test_tokens_outside_clip_l_space_are_refused(tmp_path, kandinsky):
    minilm = tmp_path / "minilm.distok"
    tokenfile.save(
        make_token(TokenSpace("minilm:all-MiniLM-L6-v2", 384, "fp16-sha256:" + "5" * 64), np.ones(384)), minilm
    )
    twin = tmp_path / "twin.distok"
    tokenfile.save(make_token(kandinsky.text.space, np.ones(768)), twin)
    other = tmp_path / "other.distok"
    tokenfile.save(make_token(TokenSpace("bert-base-uncased", 768, "fp16-sha256:" + "6" * 64), np.ones(768)), other)
    out = tmp_path / "out"
    for path, reason in [
        (
            minilm,
            "is a 384-d token of minilm:all-MiniLM-L6-v2; ComfyUI loads SD 1.x embeddings, which live in CLIP ViT-L/14's 768-d space",
        ),
        (twin, "was made with a random-weight twin (twin:kandinsky21-prior): it means nothing in ComfyUI"),
        (other, "is a 768-d token of bert-base-uncased; ComfyUI loads SD 1.x embeddings"),
        (EXAMPLES / "plain-textual-inversion.safetensors", "is a plain textual-inversion file (no distok provenance)"),
    ]:
        r = run_cli(["export", PIG, path, "--to", "comfyui", "-o", out])
        assert_one_line_error(r, 2, f"{path} {reason}")
        assert not out.exists()  # the good first token was not written either


def test_a_local_copy_of_a_clip_l_encoder_counts(tmp_path):
    from distok_cli.files import export

    for ref in (
        "/models/kandinsky-2-1-prior",
        "/hf/hub/models--stable-diffusion-v1-5--stable-diffusion-v1-5/snapshots/abc",
    ):
        assert export.in_clip_l_space(make_token(TokenSpace(ref, 768, "fp16-sha256:" + "7" * 64), np.ones(768)))
    assert not export.in_clip_l_space(
        make_token(TokenSpace("/models/my-encoder", 768, "fp16-sha256:" + "7" * 64), np.ones(768))
    )


def test_name_collisions_are_refused_without_overwrite(tmp_path):
    r = run_cli(["export", PIG, "--to", "a1111", "-o", tmp_path, "-q"])
    assert r.code == 0
    first = open(r.out.strip(), "rb").read()
    assert_one_line_error(
        run_cli(["export", PIG, "--to", "comfyui", "-o", tmp_path]),
        2,
        f"{tmp_path}/pig55-sheep25-snake20-447da2.safetensors exists (use --overwrite to replace)",
    )
    assert open(r.out.strip(), "rb").read() == first
    r2 = run_cli(["export", PIG, "--to", "comfyui", "-o", tmp_path, "--overwrite", "-q"])
    assert r2.code == 0 and tokenfile.load(r2.out.strip()).exported["target"] == "comfyui"
    # Two tokens that would get one name in one call.
    comp = str(EXAMPLES / "composition.distok")
    assert_one_line_error(
        run_cli(["export", PIG, comp, "--to", "comfyui", "--name", "mine-1", "-o", tmp_path / "n"]),
        2,
        f"{comp} and {PIG} would both be named 'mine-1' (use --name with {{id}} or {{i}})",
    )
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize(
    "template,expect",
    [
        ("{title}-{id6}", "pig55-sheep25-snake20-447da2"),
        ("pig-{i}", "pig-0"),
        ("{stem}_{id}", "pig-sheep-snake_447da21bacb8"),
        ("My Token {id6}", "my-token-447da2"),
    ],
)
def test_name_templates(tmp_path, template, expect):
    r = run_cli(["export", PIG, "--to", "a1111", "--name", template, "-o", tmp_path, "-q"])
    assert r.code == 0, r.err
    assert r.out.strip() == f"{tmp_path}/{expect}.safetensors"


@pytest.mark.parametrize(
    "args,reason",
    [
        (
            ["--name", "cat"],
            "--name gives 'cat': a trigger word needs 3 to 64 of a-z, 0-9, '-', '_' and at least one character",
        ),
        (["--name", "xy"], "--name gives 'xy'"),
        (["--name", "{nope}"], "--name '{nope}': use {title}, {id}, {id6}, {stem} or {i}"),
        (["--name", "{"], "--name '{': use {title}"),
        (["--to", "sdxl"], "--to must be comfyui, a1111, invokeai or diffusers, got 'sdxl'"),
        (["--dtype", "bfloat16"], "--dtype must be float32 or float16, got 'bfloat16'"),
    ],
)
def test_bad_export_options_exit_2(tmp_path, args, reason):
    base = ["export", PIG, "-o", tmp_path / "o"]
    if "--to" not in args:
        base += ["--to", "comfyui"]
    assert_one_line_error(run_cli([*base, *args]), 2, reason)
    assert not (tmp_path / "o").exists()


def test_export_reads_paths_from_stdin_and_dest_is_an_alias(tmp_path):
    r = run_cli(
        ["export", "-", "--to", "invokeai", "--dest", tmp_path, "-q"],
        stdin=f"{PIG}\n{EXAMPLES / 'composition.distok'}\n",
    )
    assert r.code == 0, r.err
    assert [p.rsplit("/", 1)[1] for p in r.out.split()] == [
        "pig55-sheep25-snake20-447da2.safetensors",
        "composition-pig-cauchy-03ed3f.safetensors",
    ]

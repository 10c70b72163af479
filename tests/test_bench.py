"""The prepared GPU benchmark must not rot between leases: its smoke mode runs every part on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_gpu_bench_smoke_runs_every_part_and_compares_with_eager(tmp_path, kandinsky):
    """kandinsky: the twins are built (and cached) before the subprocess loads them."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert [k for k in res if k.endswith(("_error", "_skipped"))] == []
    for key in (
        "render_s_per_concept_b1",
        "render_s_per_concept_b2",
        "prior_s_per_concept_b8",
        "estimate_s_per_image_b8",
        "train_step_ms_n8",
        "train_step_ms_n64",
        "train_step_ms_n8_padded77",
        "train_20k_steps_min_n8",
        "cl_render_s_per_concept_b1",
        "compile_render_s_per_concept_b1",
        "compile_render_s_per_concept_b2",
        "train_compile_default_step_ms_n8",
        "sdxl_render_s_per_image_b1",
        "sdxl_render_s_per_image_b4",
        "sdxl_train_step_ms_n8",
    ):
        assert isinstance(res[key], float) and res[key] > 0, key
    # Where a render's time goes: each stage hooked once per call (2 prior and 2 decoder steps in the smoke run).
    for b in (1, 2):
        st = res[f"stages_ms_b{b}"]
        assert {k: st[k]["calls"] for k in ("prior_text", "prior_step", "unet_step", "movq_decode")} == {
            "prior_text": 2,
            "prior_step": 2,
            "unet_step": 2,
            "movq_decode": 1,
        }  # text: prompt, then the empty one
        staged = sum(st[k]["total_ms"] for k in ("prior_text", "prior_step", "unet_step", "movq_decode"))
        assert 0 < staged <= st["render_ms"] and abs(st["other_ms"] - (st["render_ms"] - staged)) < 0.1
    # SDXL: each text encoder once (the empty prompt's embedding is zeros: force_zeros_for_empty_prompt, as
    # in SDXL base), 2 UNet steps, one VAE decode; the decode alone in fp32 and fp16.
    st = res["sdxl_stages_ms_b1"]
    assert {k: st[k]["calls"] for k in ("text_l", "text_g", "unet_step", "vae_decode")} == {
        "text_l": 1,
        "text_g": 1,
        "unet_step": 2,
        "vae_decode": 1,
    }
    staged = sum(st[k]["total_ms"] for k in ("text_l", "text_g", "unet_step", "vae_decode"))
    assert 0 < staged <= st["render_ms"] and abs(st["other_ms"] - (st["render_ms"] - staged)) < 0.1
    assert res["sdxl_vae_decode_ms_fp32"] > 0 and res["sdxl_vae_decode_ms_fp16"] > 0
    assert res["sdxl_render_s_per_image_b1_bf16"] > 0 and res["sdxl_bf16_stages_ms_b1"]["vae_decode"]["calls"] == 1
    # FLUX: CLIP-L and T5 once each (no CFG batch: FLUX is guidance-distilled), 2 transformer steps in the
    # smoke run, one VAE decode; schnell's and dev's renders and the training step timed.
    st = res["flux_schnell_stages_ms_b1"]
    assert {k: st[k]["calls"] for k in ("text_l", "text_t5", "transformer_step", "vae_decode")} == {
        "text_l": 1,
        "text_t5": 1,
        "transformer_step": 2,
        "vae_decode": 1,
    }
    for key in ("flux_schnell_render_s_b1", "flux_dev_render_s_b1", "flux_train_step_ms_n8"):
        assert isinstance(res[key], float) and res[key] > 0, key
    # Dynamo capture (aot_eager backend on the CPU) reproduces the eager pixels and embeddings exactly.
    assert res["compile_max_pixel_diff_vs_eager_b1"] == 0
    assert res["train_compile_default_max_abs_diff_vs_eager"] == 0.0
    assert res["cl_max_pixel_diff_vs_eager_b1"] <= 3


@pytest.mark.slow
def test_reproduce_paper_kit_runs_end_to_end_on_the_tiny_twins(tmp_path, kandinsky):
    """bench/reproduce_paper.sh: train both arms, BLIP-VQA eval on renders, the table beside the paper's numbers."""
    env = {
        **os.environ,
        "RECIPE": "tiny",
        "STEPS": "2",
        "VQA": "twin:blip-vqa",
        "OUT": str(tmp_path / "paper"),
        "EXTRA": "estimator.images=1 eval.temperature=1.0",
        "METRICS": "clipscore,pickscore,blip-kl",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    r = subprocess.run(
        ["bash", str(ROOT / "bench" / "reproduce_paper.sh")], capture_output=True, text=True, env=env, timeout=900
    )
    assert r.returncode == 0, r.stderr[-2000:]
    table = (tmp_path / "paper" / "table.md").read_text()
    assert r.stdout == table
    rows = [line for line in table.splitlines() if line.startswith(("| w/o", "| Full", "| distok's objective (ours)"))]
    assert rows[0].startswith("| w/o Consistency Enforcement | 0.0732 | ") and rows[1].startswith(
        "| Full DisTok | 0.0602 | "
    )
    assert rows[2].startswith("| distok's objective (ours) | — | ")
    for arm in ("full", "no-cst", "distok"):
        ev = json.loads((tmp_path / "paper" / f"eval-{arm}.json").read_text())
        assert ev["estimator"] == "blip-vqa:twin:blip-vqa" and ev["n"] == 30 and ev["images"] == 1
        assert f"| {ev['kl']:.4f} |" in table and "raw_mix" in ev["baselines"]
        assert (tmp_path / "paper" / arm / "model.safetensors").is_file()
    # Table 1, laid out like the paper's: its numbers beside ours, the metrics that ran filled in, the others —.
    lines = table.splitlines()
    t1 = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in lines if line.startswith("| ")}
    full_d = json.loads((tmp_path / "paper" / "eval-full.json").read_text())["metrics"]["arms"]
    full_p = json.loads((tmp_path / "paper" / "eval-pairs-full.json").read_text())
    assert full_p["n"] == 28  # every pair of the tiny recipe's 8 classes (fewer than 30)
    assert t1[("DisTok, the paper's objective", "distributions")] == (
        f"| DisTok, the paper's objective | distributions | 0.734 / — | 21.23 / {full_d['distok']['pickscore']:.3f} | "
        f"0.661 / — | {full_d['distok']['clipscore']:.3f} |"
    )
    assert t1[("DisTok, the paper's objective", "pairs")].startswith(
        "| DisTok, the paper's objective | pairs | 0.84 / — | 22.33 / "
    )
    assert (
        t1[("BASS (the paper's figures)", "pairs")]
        == "| BASS (the paper's figures) | pairs | 0.667 / — | 21.67 / — | 0.387 / — | — |"
    )
    assert ("raw mix Σ p_i t_i (no model)", "distributions") in t1 and ("distok's objective", "pairs") in t1
    assert t1[("plain prompt (the classes named)", "pairs")].endswith(
        f"| {full_p['metrics']['arms']['plain']['clipscore']:.3f} |"
    )
    assert re.search(r"^Time per concept: \d+\.\d{3} ms, one forward of the encoder", table, re.M)
    assert "  consistency: true\n" in (tmp_path / "paper" / "full" / "recipe.yaml").read_text()
    assert "  consistency: false\n" in (tmp_path / "paper" / "no-cst" / "recipe.yaml").read_text()
    for arm, objective in (("full", "paper"), ("no-cst", "paper"), ("distok", "distok")):
        assert f"  objective: {objective}\n" in (tmp_path / "paper" / arm / "recipe.yaml").read_text()


def _limits():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import physical_limits
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return physical_limits


@pytest.mark.parametrize("grad", [False, True])
def test_physical_limits_counter_counts_flops_and_kernels_as_computed_by_hand(grad):
    """Linear 64 → 32 on 5 rows: 2·5·64·32 = 20,480 FLOPs; attention over [2, 4, 10, 16]: QKᵀ and AV,
    2 × 2·(2·4)·10·10·16 = 51,200. With gradients the linear's backward adds the grad-weight product
    (20,480; x needs no gradient, so there is no grad-input product) and the attention its backward
    (2.5 × its forward, torch's formula: 128,000)."""
    import torch

    pl = _limits()
    lin = torch.nn.Linear(64, 32)
    x, q = torch.randn(5, 64), torch.randn(2, 4, 10, 16, requires_grad=grad)
    c = pl.Counter()
    with torch.enable_grad() if grad else torch.inference_mode(), c:
        y = torch.nn.functional.gelu(lin(x))
        a = torch.nn.functional.scaled_dot_product_attention(q, q, q)
        if grad:
            (y.sum() + a.sum()).backward()
    stats = c.stats["other"]
    if not grad:
        assert stats["flops"] == 20_480 + 51_200
        assert stats["kernels"] == 3  # addmm, gelu, one fused attention: views and the weight's transpose are free
        # fp16 bytes of every argument and result: x 320·2, bias 32·2, W 2048·2, y 160·2 twice (gelu in and out), q×3 + out
        assert stats["eager_bytes"] == (320 + 32 + 2048 + 160) * 2 + 160 * 2 * 2 + (1280 * 4) * 2
    else:
        assert stats["flops"] == 2 * 20_480 + 51_200 + 128_000


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_physical_limits_runs_on_the_twins_and_its_floors_follow_from_its_counts(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "physical_limits.py"), "--tiny", "--out", str(tmp_path / "l")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "l.json").read_text())
    rows = {row["stage"]: row for row in res["stages"]}
    assert list(rows) == [
        "prior_text",
        "prior_step",
        "unet_step",
        "movq_decode",
        "train_step",
        "text_fwd_bwd",
        "estimate",
    ]
    assert [rows[s]["calls_per_render"] for s in ("prior_text", "prior_step", "unet_step", "movq_decode")] == [
        2,
        25,
        50,
        1,
    ]
    for row in rows.values():
        assert row["flops"] > 0 and row["kernels"] >= 10 and row["weight_bytes"] > 0, row
        assert row["compute_floor_ms"] == round(row["flops"] / 989e12 * 1e3, 4)
        assert row["weights_floor_ms"] == round(row["weight_bytes"] / 3.35e12 * 1e3, 4)
    assert rows["unet_step"]["anchor_us_per_kernel"] == round(38.7e3 / rows["unet_step"]["kernels"], 4)
    assert "anchor_eager_ms" not in rows["train_step"] and rows["text_fwd_bwd"]["anchor_eager_ms"] == 20.9
    # The models' own forward (and the text encoder's backward, through TextSide's hook) read nothing back:
    # nothing in them stops a CUDA graph. The training step reads its logged losses.
    assert [
        s for s in ("prior_text", "prior_step", "unet_step", "movq_decode", "text_fwd_bwd") if rows[s]["host_reads"]
    ] == []
    assert {w.split(":")[0] for w in rows["train_step"]["host_reads"]} >= {"distok_cli/method/trainer.py"}
    total = res["render_per_concept_b1"]["kernels"]
    assert total == sum(
        rows[s]["kernels"] * rows[s]["calls_per_render"]
        for s in ("prior_text", "prior_step", "unet_step", "movq_decode")
    )
    table = (tmp_path / "l.md").read_text()
    assert (
        table == r.stdout[r.stdout.index("# Physical limits") :] and table.count("\n| ") == 1 + 7
    )  # header and seven stages


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_physical_limits_counts_sdxl_by_stage_with_h200_floors_and_the_fp32_decode(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "physical_limits.py"), "--tiny", "--sdxl", "--out", str(tmp_path / "l")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "l.json").read_text())
    assert res["card"]["card"] == "H200 SXM" and res["counted_render"] == {"steps": 2} and res["render"]["steps"] == 30
    rows = {row["stage"]: row for row in res["stages"]}
    assert list(rows) == ["text_l", "text_g", "unet_step", "vae_decode", "train_step"]
    # Each encoder once (the empty prompt's conditioning is zeros), 30 UNet steps, one decode.
    assert [rows[s]["calls_per_render"] for s in ("text_l", "text_g", "unet_step", "vae_decode")] == [1, 1, 30, 1]
    for row in rows.values():
        assert row["flops"] > 0 and row["kernels"] >= 10 and row["weight_bytes"] > 0, row
        assert row["compute_floor_ms"] == round(row["flops"] / 989e12 * 1e3, 4)
        assert row["weights_floor_ms"] == round(row["weight_bytes"] / 4.8e12 * 1e3, 4)
        assert not any(k.startswith("anchor") for k in row), row  # Kandinsky's anchors are not SDXL's
    dec = rows["vae_decode"]
    assert 0 < dec["conv_flops"] < dec["flops"]
    assert dec["fp32_compute_floor_ms"] == round(
        (dec["conv_flops"] / 494e12 + (dec["flops"] - dec["conv_flops"]) / 67e12) * 1e3, 4
    )
    assert dec["fp32_traffic_ms"] == round(dec["eager_bytes"] * 2 / 4.8e12 * 1e3, 4)
    assert [s for s in ("text_l", "text_g", "unet_step", "vae_decode") if rows[s]["host_reads"]] == []
    total = res["render_per_image_b1"]
    assert total["kernels"] == sum(
        rows[s]["kernels"] * rows[s]["calls_per_render"] for s in ("text_l", "text_g", "unet_step", "vae_decode")
    )
    table = (tmp_path / "l.md").read_text()
    assert table == r.stdout[r.stdout.index("# Physical limits, SDXL") :] and table.count("\n| ") == 1 + 5

"""The prepared GPU benchmark must not rot between leases: its smoke mode runs every part on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_gpu_bench_smoke_runs_every_part_and_compares_with_eager(tmp_path, kandinsky):
    """kandinsky: the twins are built (and cached) before the subprocess loads them."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert [k for k in res if k.endswith(("_error", "_skipped"))] == []
    for key in ("render_s_per_concept_b1", "render_s_per_concept_b2", "prior_s_per_concept_b8",
                "estimate_s_per_image_b8", "train_step_ms_n8", "train_step_ms_n64",
                "train_step_ms_n8_padded77", "train_20k_steps_min_n8", "cl_render_s_per_concept_b1",
                "compile_render_s_per_concept_b1", "compile_render_s_per_concept_b2", "train_compile_default_step_ms_n8"):
        assert isinstance(res[key], float) and res[key] > 0, key
    # Dynamo capture (aot_eager backend on the CPU) reproduces the eager pixels and embeddings exactly.
    assert res["compile_max_pixel_diff_vs_eager_b1"] == 0
    assert res["train_compile_default_max_abs_diff_vs_eager"] == 0.0
    assert res["cl_max_pixel_diff_vs_eager_b1"] <= 3


@pytest.mark.slow
def test_reproduce_paper_kit_runs_end_to_end_on_the_tiny_twins(tmp_path, kandinsky):
    """bench/reproduce_paper.sh: train both arms, BLIP-VQA eval on renders, the table beside the paper's numbers."""
    env = {**os.environ, "RECIPE": "tiny", "STEPS": "2", "VQA": "twin:blip-vqa", "OUT": str(tmp_path / "paper"),
           "EXTRA": "estimator.images=1 eval.temperature=1.0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(ROOT / "bench" / "reproduce_paper.sh")], capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    table = (tmp_path / "paper" / "table.md").read_text()
    assert r.stdout == table
    rows = [line for line in table.splitlines() if line.startswith("| w/o") or line.startswith("| Full")]
    assert rows[0].startswith("| w/o Consistency Enforcement | 0.0732 | ") and rows[1].startswith("| Full DisTok | 0.0602 | ")
    for arm in ("full", "no-cst"):
        ev = json.loads((tmp_path / "paper" / f"eval-{arm}.json").read_text())
        assert ev["estimator"] == "blip-vqa:twin:blip-vqa" and ev["n"] == 30 and ev["images"] == 1
        assert f"| {ev['kl']:.4f} |" in table and "raw_mix" in ev["baselines"]
        assert (tmp_path / "paper" / arm / "model.safetensors").is_file()
    assert "  consistency: true\n" in (tmp_path / "paper" / "full" / "recipe.yaml").read_text()
    assert "  consistency: false\n" in (tmp_path / "paper" / "no-cst" / "recipe.yaml").read_text()

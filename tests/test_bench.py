"""The prepared GPU benchmark must not rot between leases: its smoke mode runs every part on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


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

"""FLUX.1 on the CPU: the twin's costs beside the Kandinsky and SDXL twins', in one run (read the ratios).

    python bench/flux_cpu.py            # writes bench/results/flux-cpu.{json,md}

Building the FLUX twin; a ``distok train`` of 60 steps on ``tiny``, ``sdxl-tiny`` and ``flux-tiny`` (same
steps, estimation renders + BLIP, caches warm); one render on each twin in process (after a warm-up, the
recipe's size and steps: 64 px for tiny and sdxl-tiny, 32 px for flux-tiny, 2 steps each); and one text-side
training step (n = 8, distok's objective) on each twin's text side. The full-size FLUX text side (CLIP-L +
T5-XXL, 4.9 B parameters, 19.6 GB in fp32) does not fit beside a training step in this VM's memory: its step
is a GPU figure (bench/gpu_bench.py).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sdxl_cpu import median_s, train_cli_s, train_step_ms  # noqa: E402

RECIPES = ("tiny", "sdxl-tiny", "flux-tiny")


def main() -> None:
    import torch

    from distok_cli.backends import twins
    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.registry import load_text_side, make_renderer
    from distok_cli.files import recipes

    res: dict[str, object] = {}
    work = Path(tempfile.mkdtemp(prefix="distok-flux-cpu-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DISTOK_CACHE": str(work / "cache")}
    t = time.perf_counter()
    twins.build_flux().save_pretrained(work / "twin")
    res["flux_twin_build_s"] = time.perf_counter() - t
    for r in RECIPES:  # build each twin cache once, then time
        subprocess.run(
            [sys.executable, "-m", "distok_cli", "train", "-r", r, "-o", str(work / f"warm-{r}"), "--steps", "1", "-q"],
            check=True,
            env=env,
        )
    res["train_60_steps_s"] = {r: train_cli_s(r, work, env) for r in RECIPES}
    os.environ["DISTOK_CACHE"] = env["DISTOK_CACHE"]
    renders, steps = {}, {}
    classes = list(recipes.load("tiny").classes)
    for name in RECIPES:
        cfg = recipes.load(name)
        rend = make_renderer(cfg.render, "cpu")
        s = Settings.from_config(cfg.render)
        v = torch.randn(1, rend.text.dim) * 0.02
        renders[name] = median_s(lambda rend=rend, v=v, s=s: rend.render(v, ["a photo of a <>"], [0], s), 5)
        steps[name] = train_step_ms(load_text_side(cfg, "cpu", "float32"), name, classes)
    res["render_s_per_image_twin"] = renders
    res["text_train_step_ms_twin"] = steps
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "cpus": os.cpu_count()}
    out = ROOT / "bench" / "results"
    (out / "flux-cpu.json").write_text(json.dumps({"meta": meta, **res}, indent=1) + "\n")
    tr, rd, st = res["train_60_steps_s"], renders, steps
    lines = [
        f"# FLUX.1 twin on the CPU ({meta['date']}, {meta['cpus']} cores, {meta['machine']})",
        "",
        "`python bench/flux_cpu.py`; one run, so compare the ratios.",
        "",
        "| figure | `tiny` (Kandinsky) | `sdxl-tiny` | `flux-tiny` | FLUX / Kandinsky |",
        "|---|---|---|---|---|",
        f"| `distok train` 60 steps (whole command) | {tr['tiny']:.1f} s | {tr['sdxl-tiny']:.1f} s | "
        f"{tr['flux-tiny']:.1f} s | {tr['flux-tiny'] / tr['tiny']:.2f} |",
        f"| one render (the recipe's size, 2 steps) | {rd['tiny'] * 1000:.0f} ms | {rd['sdxl-tiny'] * 1000:.0f} ms | "
        f"{rd['flux-tiny'] * 1000:.0f} ms | {rd['flux-tiny'] / rd['tiny']:.2f} |",
        f"| one text-side training step (n = 8) | {st['tiny']:.1f} ms | {st['sdxl-tiny']:.1f} ms | "
        f"{st['flux-tiny']:.1f} ms | {st['flux-tiny'] / st['tiny']:.2f} |",
        f"| building the FLUX twin (once per cache folder) | | | {res['flux_twin_build_s']:.1f} s | |",
    ]
    (out / "flux-cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

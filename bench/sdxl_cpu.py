"""SDXL on the CPU: the twin's costs beside the Kandinsky twin's, and the full-size SDXL training step.

    python bench/sdxl_cpu.py            # writes bench/results/sdxl-cpu.{json,md}

In one run, so that the figures compare as ratios (VMs of one kind differ): building the SDXL twin; a
``distok train`` of 60 steps on ``sdxl-tiny`` and on ``tiny`` (same steps, estimation renders + BLIP);
one render on each twin (in process, after a warm-up); and ``Trainer.train_step`` (n = 8, fp32, text
side, distok's objective) on the full-size SDXL text encoders (CLIP ViT-L/14 + OpenCLIP ViT-bigG/14,
random weights, ``bench/fullsize.py``) beside the full-size CLIP-L step of the Kandinsky/SD 1.x recipes.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def median_s(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_cli_s(recipe: str, work: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "distok_cli", "train", "-r", recipe, "-o", str(work / recipe), "--steps", "60", "-q"],
        check=True,
        env=env,
    )
    return time.perf_counter() - t


def train_step_ms(text, tag: str, classes: list[str]) -> float:
    from distok_cli.backends.token_estimators import TextEstimator
    from distok_cli.files import recipes
    from distok_cli.method.trainer import Trainer

    cfg = recipes.override(
        recipes.load("kandinsky21-animals"),
        ["train.n=8", "estimator.kind=text", "train.estimate_every=100000", f"classes={','.join(classes)}"],
    )
    est = TextEstimator(text, list(cfg.classes), "a photo of a {}", "a photo of a <>", 1.0, "bench")
    tr = Trainer(cfg, Path(tempfile.mkdtemp(prefix="distok-bench-")) / tag, text, est, "cpu")
    return median_s(tr.train_step, 5) * 1000


def main() -> None:
    import fullsize
    import torch

    from distok_cli.backends import twins
    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.registry import make_renderer
    from distok_cli.backends.sdxl import SDXLTextSide
    from distok_cli.backends.textside import TextSide
    from distok_cli.files import recipes

    res: dict[str, object] = {}
    work = Path(tempfile.mkdtemp(prefix="distok-sdxl-cpu-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DISTOK_CACHE": str(work / "cache")}
    t = time.perf_counter()
    twins.build_sdxl().save_pretrained(work / "twin")
    res["sdxl_twin_build_s"] = time.perf_counter() - t
    # warm the twin caches (built once per cache folder), then time training on each twin
    for r in ("tiny", "sdxl-tiny"):
        subprocess.run(
            [sys.executable, "-m", "distok_cli", "train", "-r", r, "-o", str(work / f"warm-{r}"), "--steps", "1", "-q"],
            check=True,
            env=env,
        )
    res["train_60_steps_s"] = {r: train_cli_s(r, work, env) for r in ("tiny", "sdxl-tiny")}
    os.environ["DISTOK_CACHE"] = env["DISTOK_CACHE"]
    renders = {}
    for name in ("tiny", "sdxl-tiny"):
        cfg = recipes.load(name)
        rend = make_renderer(cfg.render, "cpu")
        s = Settings.from_config(cfg.render)
        v = torch.randn(1, rend.text.dim) * 0.02
        renders[name] = median_s(lambda rend=rend, v=v, s=s: rend.render(v, ["a photo of a <>"], [0], s), 5)
    res["render_s_per_image_twin"] = renders
    classes = list(recipes.load("tiny").classes)
    tok = fullsize.clip_tokenizer(classes)
    clip_l = TextSide(tok, fullsize.clip_text("cpu", tok), "bench:clip-l")
    t = time.perf_counter()
    pipe = fullsize.sdxl_pipeline("cpu", classes)
    res["sdxl_fullsize_text_build_s"] = time.perf_counter() - t
    sdxl_text = SDXLTextSide((pipe.tokenizer, pipe.tokenizer_2), (pipe.text_encoder, pipe.text_encoder_2), "bench:sdxl")
    del pipe.unet, pipe.vae
    res["train_step_ms_n8_fullsize"] = {
        "clip-l (kandinsky21, sd15)": train_step_ms(clip_l, "l", classes),
        "sdxl (clip-l + openclip-g)": train_step_ms(sdxl_text, "xl", classes),
    }
    shutil.rmtree(work, ignore_errors=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    out = ROOT / "bench" / "results"
    (out / "sdxl-cpu.json").write_text(json.dumps({"meta": meta, **res}, indent=1) + "\n")
    tr, rd, st = res["train_60_steps_s"], res["render_s_per_image_twin"], res["train_step_ms_n8_fullsize"]
    lines = [
        f"# SDXL on the CPU ({meta['date']}, {meta['machine']}, torch {meta['torch']})",
        "",
        "`python bench/sdxl_cpu.py`; one run, so compare the ratios.",
        "",
        "| figure | Kandinsky / CLIP-L | SDXL | ratio |",
        "|---|---|---|---|",
        f"| `distok train` 60 steps on the twin (whole command) | {tr['tiny']:.1f} s (`tiny`) | {tr['sdxl-tiny']:.1f} s (`sdxl-tiny`) | "
        f"{tr['sdxl-tiny'] / tr['tiny']:.2f} |",
        f"| one render on the twin (64 px, 2 steps) | {rd['tiny'] * 1000:.0f} ms | {rd['sdxl-tiny'] * 1000:.0f} ms | "
        f"{rd['sdxl-tiny'] / rd['tiny']:.2f} |",
        f"| training step, full-size text side, n = 8, fp32 | {st['clip-l (kandinsky21, sd15)']:.0f} ms | "
        f"{st['sdxl (clip-l + openclip-g)']:.0f} ms | {st['sdxl (clip-l + openclip-g)'] / st['clip-l (kandinsky21, sd15)']:.2f} |",
        f"| building the SDXL twin (once per cache) | | {res['sdxl_twin_build_s']:.1f} s | |",
    ]
    (out / "sdxl-cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""GPU benchmark of distok's own code paths on full-size, random-weight architectures (not a timed test).

Weights cannot be downloaded on the device machine, but speed does not depend on weight values, so
random tensors of the real shapes (bench/fullsize.py) give real timings. In fp16, after warm-up, with
CUDA synchronisation, in this order (most needed first; each part is skipped when the time budget
would be overrun, and gpu_bench.json is rewritten after every figure, so a cut-off run keeps what it got):

1. eager baselines (the issue's figures): KandinskyRenderer.render (prior 25 + decoder 50 steps, 512 px,
   guidance 4) per concept at batch 1, 8, 16 with peak VRAM of the render models alone; where a
   render's time goes at batch 1 and 16 (prior text encoder, prior steps, UNet steps, MoVQ decode, the
   rest; bench/stages.py hooks the renderer's modules and synchronises at each boundary); the
   prior alone; BlipItmEstimator on 60 classes; Trainer.train_step (text side) at n = 8 and 64, and at
   n = 8 padded to 77 positions (what TextSide did before it trimmed after the last EOS); SDXL
   (base 1.0 architecture, recipe sdxl-animals): SDXLRenderer.render at 1024 px, 30 Euler steps, guidance 5,
   batch 1 and 4, with peak VRAM, where a batch-1 render's time goes (each text encoder, UNet steps, VAE
   decode, the rest), the VAE decode alone in fp32 (what diffusers runs, force_upcast) and fp16, the SDXL
   training step (both text encoders) at n = 8, then a batch-1 render in bf16 (no upcast) and its stages;
   FLUX.1 (recipe flux-animals, bf16, 1024 px): a render with schnell's 4 steps and with dev's 28, with peak
   VRAM, where a schnell render's time goes, and the FLUX training step (CLIP-L + T5-XXL) at n = 8;
2. speed-up attempts, each checked against the eager output of the same inputs (max |Δ| in 0-255 pixels,
   or in embedding units), in the order bench/results/physical-limits.md argues for: the UNet in CUDA
   graphs (torch.compile mode="reduce-overhead") at batch 1 with its compile time (the single-concept
   target); the training step in CUDA graphs (the text encoder compiled, with TextSide's own injection
   hook; the 20K-step target); the prior in CUDA graphs too, then a batch-1 render with both and where its
   time goes; distok's ``--compile`` (compile_unet: default mode, static shapes) at batch 16, then at
   batch 1; the training step compiled in default mode; the UNet in channels-last memory format.

Usage on the GPU machine (see bench/run_gpu.sh):   python bench/gpu_bench.py --out $OUT
Smoke test on a CPU (tiny twins, same code, ~1 min):  python bench/gpu_bench.py --smoke --out /tmp/x
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RESULTS: dict[str, object] = {}
STATE = {"out": Path("."), "deadline": float("inf"), "cuda": False}
PROMPT = "a photo of a <>"


def log(key: str, value: object) -> None:
    """Record one figure, print it, and rewrite gpu_bench.json (atomically) so nothing is lost on a cut."""
    RESULTS[key] = round(value, 4) if isinstance(value, float) else value
    print(json.dumps({key: RESULTS[key]}), flush=True)
    path = STATE["out"] / "gpu_bench.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(RESULTS, indent=1) + "\n")
    os.replace(tmp, path)


def left() -> float:
    return STATE["deadline"] - time.monotonic()


@contextlib.contextmanager
def part(name: str, need_s: float):
    """Run a part only if ``need_s`` seconds are left; an error is logged as that part's result, not fatal."""
    if left() < need_s:
        log(f"{name}_skipped", f"time budget: {left():.0f} s left, part needs about {need_s:.0f} s")
        yield False
        return
    t = time.monotonic()
    try:
        yield True
    except Exception as exc:  # noqa: BLE001 - a failed attempt is a result
        log(f"{name}_error", f"{type(exc).__name__}: {str(exc)[:300]}")
        traceback.print_exc()
        if STATE["cuda"]:
            torch.cuda.empty_cache()
    log(f"{name}_part_s", round(time.monotonic() - t, 1))


def sync() -> None:
    if STATE["cuda"]:
        torch.cuda.synchronize()


def bench(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def first_call_s(fn) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def reset_peak() -> None:
    if STATE["cuda"]:
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if STATE["cuda"] else None


def pixel_diff(a: list, b: list) -> int:
    import numpy as np

    return max(int(np.abs(np.asarray(x, dtype=np.int16) - np.asarray(y, dtype=np.int16)).max()) for x, y in zip(a, b))


def stage_times(renderer, render, key: str) -> None:
    """One ``render()`` with every stage's calls timed (synchronised at each boundary): where the time goes."""
    import stages

    spent: dict[str, float] = {}
    calls: dict[str, int] = {}
    began: dict[str, float] = {}

    def enter(name: str) -> None:
        sync()
        began[name] = time.perf_counter()

    def leave(name: str) -> None:
        sync()
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - began.pop(name)
        calls[name] = calls.get(name, 0) + 1

    render()  # warm
    with stages.hooked(renderer, enter, leave):
        total = first_call_s(render)
    log(
        key,
        {
            name: {
                "calls": calls[name],
                "total_ms": round(spent[name] * 1e3, 2),
                "per_call_ms": round(spent[name] * 1e3 / calls[name], 3),
            }
            for name in spent
        }
        | {"other_ms": round((total - sum(spent.values())) * 1e3, 2), "render_ms": round(total * 1e3, 2)},
    )


def sdxl_part(smoke: bool, device: str, dtype: str, reps: int, steps: int) -> None:
    """SDXL (recipe sdxl-animals): a 1024 px render at 30 steps, batch 1 and 4, and the training step at n = 8."""
    import fullsize

    from distok_cli.backends.sdxl import SDXLRenderer
    from distok_cli.backends.token_estimators import TextEstimator
    from distok_cli.files import recipes
    from distok_cli.method.trainer import Trainer

    cfg = recipes.load("sdxl-animals")
    if smoke:
        from distok_cli.backends import twins

        pipe = twins.build_sdxl()
        cfg = recipes.override(
            cfg, ["render.size=64", "render.steps=2", f"classes={','.join(recipes.load('tiny').classes)}"]
        )
    else:
        t = time.perf_counter()
        pipe = fullsize.sdxl_pipeline(device, list(cfg.classes))
        log("sdxl_build_pipeline_s", round(time.perf_counter() - t, 1))
    renderer = SDXLRenderer(cfg.render, device, dtype, pipeline=pipe)
    from distok_cli.backends.pipelines import Settings

    s = Settings.from_config(cfg.render)
    log(
        "sdxl_render_settings",
        {"size": s.size, "steps": s.steps, "guidance": s.guidance, "scheduler": cfg.render.scheduler},
    )
    vecs = torch.randn(4, renderer.text.dim, generator=torch.Generator().manual_seed(0)) * 0.02
    for b in (1, 4):
        reset_peak()
        log(
            f"sdxl_render_s_per_image_b{b}",
            bench(lambda b=b: renderer.render(vecs[:b], [PROMPT] * b, list(range(b)), s), 1, max(1, reps - 1)) / b,
        )
        log(f"sdxl_render_peak_vram_GiB_b{b}", peak_gib())
    stage_times(renderer, lambda: renderer.render(vecs[:1], [PROMPT], [0], s), "sdxl_stages_ms_b1")
    # SDXL base's VAE config says force_upcast, so diffusers casts it to fp32 for every decode of an fp16
    # render (and back): the decode alone in fp32 and in fp16 says what an fp16-safe VAE would save.
    vae = renderer.pipe.vae
    log("sdxl_vae_force_upcast", bool(vae.config.force_upcast))
    lat = torch.randn(1, 4, s.size // 8, s.size // 8, generator=torch.Generator().manual_seed(0)).to(device)
    for name, dt in (("fp32", torch.float32), ("fp16", torch.float16)):
        vae.to(dtype=dt)
        with torch.inference_mode():
            log(f"sdxl_vae_decode_ms_{name}", bench(lambda dt=dt: vae.decode(lat.to(dt)), 1, reps) * 1000)
    vae.to(dtype=renderer.dtype)
    tcfg = recipes.override(cfg, ["train.n=8", "estimator.kind=text", "train.estimate_every=100000"])
    est = TextEstimator(renderer.text, list(tcfg.classes), "a photo of a {}", PROMPT, 1.0, "bench")
    tr = Trainer(tcfg, Path(tempfile.mkdtemp(prefix="distok-bench-")) / "sdxl", renderer.text, est, device)
    log("sdxl_train_step_ms_n8", bench(tr.train_step, 3, steps) * 1000)
    log("sdxl_train_20k_steps_min_n8", RESULTS["sdxl_train_step_ms_n8"] * 20000 / 60000)
    # `render --dtype bfloat16`: diffusers upcasts the VAE only for fp16, so a bf16 render decodes in bf16.
    bf16 = SDXLRenderer(cfg.render, device, "bfloat16", pipeline=renderer.pipe)
    log("sdxl_render_s_per_image_b1_bf16", bench(lambda: bf16.render(vecs[:1], [PROMPT], [0], s), 1, max(1, reps - 1)))
    stage_times(bf16, lambda: bf16.render(vecs[:1], [PROMPT], [0], s), "sdxl_bf16_stages_ms_b1")


def flux_part(smoke: bool, device: str, reps: int, steps: int) -> None:
    """FLUX.1 (recipe flux-animals, bf16): a 1024 px render with schnell's 4 steps and dev's 28 (same
    transformer: dev's guidance embedder is a small MLP), peak VRAM, where a render's time goes, and the
    training step (CLIP-L + T5-XXL) at n = 8."""
    import fullsize

    from distok_cli.backends.flux import FluxRenderer
    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.token_estimators import TextEstimator
    from distok_cli.files import recipes
    from distok_cli.method.trainer import Trainer

    cfg = recipes.load("flux-animals")
    if smoke:
        from distok_cli.backends import twins

        pipe = twins.build_flux()
        cfg = recipes.override(
            cfg,
            ["render.size=32", "render.max_sequence_length=32", f"classes={','.join(recipes.load('tiny').classes)}"],
        )
    else:
        t = time.perf_counter()
        pipe = fullsize.flux_pipeline(device, list(cfg.classes))
        log("flux_build_pipeline_s", round(time.perf_counter() - t, 1))
    renderer = FluxRenderer(cfg.render, device, "bfloat16", pipeline=pipe)
    vecs = torch.randn(1, renderer.text.dim, generator=torch.Generator().manual_seed(0)) * 0.02
    for variant, n_steps, seq in (("schnell", 4, 256), ("dev", 28, 512)):
        s = Settings.from_config(cfg.render, steps=2 if smoke else n_steps)
        renderer.cfg = recipes.override(cfg, [f"render.max_sequence_length={32 if smoke else seq}"]).render
        reset_peak()
        log(
            f"flux_{variant}_render_s_b1",
            bench(lambda s=s: renderer.render(vecs, [PROMPT], [0], s), 1, max(1, reps - 1)),
        )
        log(f"flux_{variant}_render_peak_vram_GiB_b1", peak_gib())
        if variant == "schnell":
            stage_times(renderer, lambda s=s: renderer.render(vecs, [PROMPT], [0], s), "flux_schnell_stages_ms_b1")
    tcfg = recipes.override(cfg, ["train.n=8", "estimator.kind=text", "train.estimate_every=100000"])
    est = TextEstimator(renderer.text, list(tcfg.classes), "a photo of a {}", PROMPT, 1.0, "bench")
    tr = Trainer(tcfg, Path(tempfile.mkdtemp(prefix="distok-bench-")) / "flux", renderer.text, est, device)
    log("flux_train_step_ms_n8", bench(tr.train_step, 3, steps) * 1000)
    log("flux_train_20k_steps_min_n8", RESULTS["flux_train_step_ms_n8"] * 20000 / 60000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny twins on the CPU: checks the script, times nothing real")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--batches", default="8,16")
    ap.add_argument("--budget-s", type=float, default=390.0, help="skip parts that would end after this many seconds")
    args = ap.parse_args()
    t0 = time.monotonic()
    STATE["out"] = Path(args.out)
    STATE["out"].mkdir(parents=True, exist_ok=True)
    STATE["deadline"] = t0 + args.budget_s
    STATE["cuda"] = not args.smoke
    scale = 0.05 if args.smoke else 1.0  # part time estimates (H100 seconds) shrink for the smoke run

    import fullsize

    from distok_cli.backends import pipelines as render_mod
    from distok_cli.backends.blip import BlipItmEstimator
    from distok_cli.backends.kandinsky import KandinskyRenderer
    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.textside import TextSide
    from distok_cli.backends.token_estimators import TextEstimator
    from distok_cli.files import recipes
    from distok_cli.method.trainer import Trainer

    device = "cpu" if args.smoke else "cuda"
    dtype = "float32" if args.smoke else "float16"
    log(
        "env",
        {
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
            "diffusers": __import__("diffusers").__version__,
            "transformers": __import__("transformers").__version__,
            "smoke": args.smoke,
            "date": time.strftime("%Y-%m-%d"),
            "budget_s": args.budget_s,
        },
    )
    cfg = recipes.load("kandinsky21-animals")
    if args.smoke:
        from distok_cli.backends import twins

        pipes = (twins.build_prior(), twins.build_decoder())
        small = ",".join(recipes.load("tiny").classes)  # 8 classes: the start-up pair cache stays small
        cfg = recipes.override(cfg, ["render.size=64", "render.steps=2", "render.prior_steps=2", f"classes={small}"])
        reps, batches = 1, [2]
    else:
        t = time.perf_counter()
        pipes = fullsize.kandinsky_pipelines(device, list(cfg.classes))
        log("build_pipelines_s", round(time.perf_counter() - t, 1))
        reps, batches = 3, [int(b) for b in args.batches.split(",")]
    renderer = KandinskyRenderer(cfg.render, device, dtype, pipelines=pipes)
    off = [renderer.decoder.text_encoder, renderer.prior.image_encoder]  # constants cached, moved to the CPU
    log("kept_off_gpu_GiB", round(sum(p.numel() * p.element_size() for m in off for p in m.parameters()) / 2**30, 2))
    if STATE["cuda"]:
        log("render_weights_on_gpu_GiB", round(torch.cuda.memory_allocated() / 2**30, 2))
    s1 = Settings.from_config(cfg.render, batch_size=1)
    g = torch.Generator().manual_seed(0)
    vecs = torch.randn(max(batches + [16]), renderer.text.dim, generator=g) * 0.02

    def render(b: int):
        return lambda: renderer.render(vecs[:b], [PROMPT] * b, list(range(b)), s1)

    # ------------------------------------------------------------------ 1. eager baselines
    eager: dict[int, list] = {}
    with part("render_b1", 15 * scale) as ok:
        if ok:
            reset_peak()
            log("render_s_per_concept_b1", bench(render(1), 1, reps))
            log("render_peak_vram_GiB_b1", peak_gib())
            eager[1] = render(1)()

    with part("stages_b1", 8 * scale) as ok:
        if ok:
            stage_times(renderer, render(1), "stages_ms_b1")
    best = None
    for b in batches:
        with part(f"render_b{b}", (3 + 0.45 * b) * 3 * scale) as ok:
            if ok:
                reset_peak()
                try:
                    per = bench(render(b), 1, max(1, reps - 1)) / b
                except torch.cuda.OutOfMemoryError as exc:  # pragma: no cover - GPU only
                    log(f"render_s_per_concept_b{b}", f"OOM: {str(exc)[:120]}")
                    torch.cuda.empty_cache()
                    continue
                log(f"render_s_per_concept_b{b}", per)
                log(f"render_peak_vram_GiB_b{b}", peak_gib())
                best = (per, b) if best is None or per < best[0] else best
    b_stages = batches[-1] if args.smoke else 16
    with part(f"stages_b{b_stages}", 30 * scale) as ok:
        if ok:
            stage_times(renderer, render(b_stages), f"stages_ms_b{b_stages}")
    if best:
        log("render_s_per_concept_best", {"seconds": round(best[0], 4), "batch": best[1]})
    with part("prior_b8", 10 * scale) as ok:
        if ok:
            log(
                "prior_s_per_concept_b8",
                bench(lambda: renderer.image_embeds(vecs[:8], [PROMPT] * 8, list(range(8)), s1), 1, reps) / 8,
            )
    with part("estimate", 20 * scale) as ok:
        if ok:
            if args.smoke:
                from distok_cli.backends import twins

                blip_built = twins.build_blip()
            else:
                blip_built = fullsize.blip_itm(device)
            blip = BlipItmEstimator(cfg.estimator, device, dtype, built=blip_built)
            imgs = render(8)()
            log("estimate_classes", len(cfg.classes))
            log("estimate_s_per_image_b1", bench(lambda: blip.distributions(imgs[:1], cfg.classes), 1, reps))
            log("estimate_s_per_image_b8", bench(lambda: blip.distributions(imgs, cfg.classes), 1, reps) / 8)
            del blip, blip_built
            if STATE["cuda"]:
                torch.cuda.empty_cache()

    steps = 2 if args.smoke else 20
    with part("sdxl", 80 * scale) as ok:
        if ok:
            sdxl_part(args.smoke, device, dtype, reps, steps)
    if STATE["cuda"]:
        torch.cuda.empty_cache()  # the SDXL models are gone with sdxl_part's frame
    with part("flux", 110 * scale) as ok:
        if ok:
            flux_part(args.smoke, device, reps, steps)
    if STATE["cuda"]:
        torch.cuda.empty_cache()

    text = renderer.text

    def trainer_for(n: int, name: str) -> Trainer:
        tcfg = recipes.override(cfg, [f"train.n={n}", "estimator.kind=text", "train.estimate_every=100000"])
        est = TextEstimator(text, list(tcfg.classes), "a photo of a {}", PROMPT, 1.0, "bench")
        return Trainer(tcfg, Path(tempfile.mkdtemp(prefix="distok-bench-")) / name, text, est, device)

    for n, trim in ((8, True), (64, True), (8, False)):
        label = f"train_step_ms_n{n}" + ("" if trim else "_padded77")
        with part(label, 20 * scale) as ok:
            if ok:
                with contextlib.nullcontext() if trim else fullsize.padded_to_77(text):
                    log(label, bench(trainer_for(n, label).train_step, 3, steps) * 1000)
    if "train_step_ms_n8" in RESULTS:
        log("train_20k_steps_min_n8", RESULTS["train_step_ms_n8"] * 20000 / 60000)

    # ------------------------------------------------------------------ 2. speed-up attempts
    # Most telling first (bench/results/physical-limits.md): eager, a render of one concept is 58,278
    # kernels at ~38 µs each, 23x its compute floor, so batch 1 and the training step are launch-bound
    # (CUDA graphs are the lever), while at batch 16 the UNet is compute-bound (compilation's fusion).
    unet = renderer.decoder.unet

    with part("unet_graphs_b1", 120 * scale) as ok:
        if ok and 1 in eager and not args.smoke:  # CUDA graphs need CUDA
            unet.compile(mode="reduce-overhead", dynamic=False)
            log("unet_graphs_first_render_b1_s", first_call_s(render(1)))
            log("unet_graphs_render_s_per_concept_b1", bench(render(1), 1, reps))
            log("unet_graphs_max_pixel_diff_vs_eager_b1", pixel_diff(render(1)(), eager[1]))

    def train_compile(mode: str) -> None:
        # TextSide's injection has no data-dependent branch on the token's own batch: nothing to swap.
        tr = trainer_for(8, f"compile-{mode}")
        v = (torch.randn(8, text.dim, generator=g) * 0.02).to(device)
        with torch.no_grad():
            ref = text.encode([TextSide.fill(PROMPT)] * 8, v).float()
        text.encoder.compile(mode=mode, dynamic=False, **({"backend": "aot_eager"} if args.smoke else {}))
        try:
            log(f"train_compile_{mode}_first_step_s", first_call_s(tr.train_step))
            log(f"train_compile_{mode}_step_ms_n8", bench(tr.train_step, 3, steps) * 1000)
            with torch.no_grad():
                got = text.encode([TextSide.fill(PROMPT)] * 8, v).float()
            log(f"train_compile_{mode}_max_abs_diff_vs_eager", float((got - ref).abs().max()))
        finally:
            text.encoder._compiled_call_impl = None  # back to eager for the next attempt

    with part("train_compile_reduce-overhead", 100 * scale) as ok:
        if ok and not args.smoke:  # CUDA graphs need CUDA
            train_compile("reduce-overhead")

    with part("prior_cudagraphs", 90 * scale) as ok:
        if ok and not args.smoke:  # CUDA graphs need CUDA
            unet_graphs = unet._compiled_call_impl is not None
            ref = renderer.image_embeds(vecs[:1], [PROMPT], [0], s1)[0].float()
            renderer.prior.prior.compile(mode="reduce-overhead", dynamic=False)
            log("prior_graphs_first_call_s", first_call_s(lambda: renderer.image_embeds(vecs[:1], [PROMPT], [0], s1)))
            log(
                "prior_graphs_s_per_concept_b1",
                bench(lambda: renderer.image_embeds(vecs[:1], [PROMPT], [0], s1), 1, reps),
            )
            got = renderer.image_embeds(vecs[:1], [PROMPT], [0], s1)[0].float()
            log("prior_graphs_max_abs_diff_vs_eager", float((got - ref).abs().max()))
            key = "prior_and_unet_graphs" if unet_graphs else "prior_graphs_eager_unet"
            log(f"{key}_render_s_per_concept_b1", bench(render(1), 1, reps))
            if unet_graphs:
                with part("stages_graphs_b1", 8) as ok2:
                    if ok2:
                        stage_times(renderer, render(1), "graphs_stages_ms_b1")

    # distok's own --compile (compile_unet: default mode, static shapes), batched first, then batch 1,
    # with the prior eager again so that the figures are --compile's alone.
    renderer.prior.prior._compiled_call_impl = None
    if args.smoke:
        render_mod.COMPILE["backend"] = "aot_eager"
    b16 = 16 if not args.smoke else 2
    with part(f"compile_unet_b{b16}", 120 * scale) as ok:
        if ok:
            unet._compiled_call_impl = None
            render_mod.compile_unet(renderer.decoder)
            log(f"compile_first_render_b{b16}_s", first_call_s(render(b16)))
            reset_peak()
            log(f"compile_render_s_per_concept_b{b16}", bench(render(b16), 0, max(1, reps - 1)) / b16)
            log(f"compile_render_peak_vram_GiB_b{b16}", peak_gib())

    with part("compile_unet", 100 * scale) as ok:
        if ok and 1 in eager:
            if unet._compiled_call_impl is None:
                render_mod.compile_unet(renderer.decoder)
            log("compile_first_render_b1_s", first_call_s(render(1)))
            log("compile_render_s_per_concept_b1", bench(render(1), 1, reps))
            log("compile_max_pixel_diff_vs_eager_b1", pixel_diff(render(1)(), eager[1]))

    with part("train_compile_default", 100 * scale) as ok:
        if ok:
            train_compile("default")

    with part("channels_last", 25 * scale) as ok:
        if ok and 1 in eager:
            unet._compiled_call_impl = None
            unet.to(memory_format=torch.channels_last)
            log("cl_render_s_per_concept_b1", bench(render(1), 1, reps))
            log("cl_max_pixel_diff_vs_eager_b1", pixel_diff(render(1)(), eager[1]))
            unet.to(memory_format=torch.contiguous_format)
    log("total_s", round(time.monotonic() - t0, 1))


if __name__ == "__main__":
    main()

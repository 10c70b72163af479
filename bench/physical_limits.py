"""Counted, not timed: what each stage of distok's GPU work costs in FLOPs, kernels and bytes, and the
floors that sets on an H100 (the bottleneck analysis of BENCHMARKS.md; no GPU needed).

It runs distok's own code once on the CPU, in float32, with the full-size random-weight architectures
(bench/fullsize.py; about 14 GiB of memory and 2 minutes on 2 cores), under a dispatch mode that sees every
ATen operator, and attributes each to a stage by hooking the renderer's modules (bench/stages.py):
  - a render of one concept at 512 px (KandinskyRenderer.render, 2 prior steps, 2 decoder steps: FLOPs
    and kernels of one step do not depend on how many steps follow), classifier-free guidance on, as the
    recipe renders;
  - one DisTok training step (Trainer.train_step, n = 8, text side, fwd + bwd + Adam), after two warm-up
    steps have filled its caches; and the anchor's narrower work (CLIP-L fwd + bwd into one injected row,
    8 prompts padded to 77 positions), to compare with the anchor's time;
  - one BLIP-ITM estimate (BlipItmEstimator.distributions, 1 image × 60 classes).
Per stage it records:
  - flops: matmul/conv/attention FLOPs (torch.utils.flop_counter's formulas, plus CPU flash attention);
    elementwise work is not counted (it is bandwidth, below);
  - kernels: ATen operators that are not views; each launches about one CUDA kernel when run eagerly
    (a fused attention is one, a group norm one or two): the count that sets a launch-bound floor;
  - weight_bytes: the stage's parameters in fp16, read at least once per call;
  - eager_bytes: bytes read and written by those operators (tensor arguments + outputs), halved from the
    fp32 run to fp16: eager traffic with no fusion and no cache reuse, an estimate, not a floor;
  - host_reads: where (code line) a tensor's value was read back to Python (.item(), float, bool): on a
    GPU a sync when the tensor lives there, and the end of any CUDA graph around it.
Floors on one H100 SXM5 80 GB (the anchors' card, "NVIDIA H100 80GB HBM3"): 989 TFLOP/s dense fp16 tensor
peak, 3.35 TB/s HBM3 (NVIDIA's datasheet). Where an eager anchor time is known, ``anchor_ms / kernels`` is
the time each operator costs eagerly: far above the GPU's few µs per small kernel means the stage is
launch-bound (host-side dispatch), which is what CUDA graphs and compilation remove.

With --sdxl it counts SDXL instead (recipe sdxl-animals; about 19 GiB and 7 minutes on 2 cores): a render of
one image at 1024 px (SDXLRenderer.render, 2 Euler steps counted, scaled to the recipe's 30; CFG on) split
into each text encoder, UNet steps and the VAE decode, and one training step (n = 8, both text encoders),
with floors on one H200 SXM (the card the SDXL target names: the same 989 TFLOP/s fp16 peak, 4.8 TB/s
HBM3e). SDXL base's VAE says force_upcast, so diffusers decodes an fp16 render in fp32: the decode row also
gives that floor (convolutions in TF32, which PyTorch allows for cuDNN by default: 494 TFLOP/s; the rest,
attention included, in plain fp32: 67 TFLOP/s) and its traffic in fp32.

Usage:  python bench/physical_limits.py [--out bench/results/physical-limits]   (writes .json and .md)
        python bench/physical_limits.py --sdxl [--out bench/results/physical-limits-sdxl]
        python bench/physical_limits.py --tiny [--sdxl] --out /tmp/limits   (the twins: checks the script, counts nothing real)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils import flop_counter as fc
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PEAK_FLOPS = 989e12  # H100 SXM5, dense fp16/bf16 tensor cores
HBM_BYTES_S = 3.35e12  # H100 SXM5, HBM3
# H200 SXM (NVIDIA's datasheet): the H100's tensor cores, faster memory. Dense peaks (half the sparse ones).
H200 = {"card": "H200 SXM", "peak_flops": 989e12, "hbm_bytes_s": 4.8e12, "tf32_flops": 494e12, "fp32_flops": 67e12}
FP16_OF_FP32 = 0.5
aten = torch.ops.aten
NO_KERNEL = {
    aten._unsafe_view.default,
    aten.detach.default,
    aten.lift_fresh.default,
    aten.empty.memory_format,
    aten.empty_like.default,
    aten.empty_strided.default,
    aten.new_empty.default,
    aten.new_empty_strided.default,
    aten.sym_size.int,
    aten.sym_stride.int,
    aten.sym_numel.default,
    aten.sym_storage_offset.default,
    aten.is_same_size.default,
}
# Anchors (../shared/notes/gpu-anchors.md, one H100, fp16, eager): per call of the stage, in ms.
ANCHOR_MS = {"prior_step": 10.4, "unet_step": 38.7, "movq_decode": 32.0, "text_fwd_bwd": 20.9, "estimate": 124.0}
ANCHOR_COMPILED_MS = {"unet_step": 16.3}


def _cpu_flash(query, key, value, *args, out_val=None, **kwargs) -> int:
    return fc.sdpa_flop_count(query.shape, key.shape, value.shape)


def _cpu_flash_backward(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
    return fc.sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


FLOPS = {
    **fc.flop_registry,
    aten.scaled_dot_product_attention: _cpu_flash,  # one fused kernel on the GPU: not decomposed
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
}


CONV = {aten.convolution, aten._convolution, aten.convolution_backward}


def _caller() -> str:
    """The innermost line of distok, diffusers, transformers or torch.optim that asked for the value."""
    for frame in reversed(traceback.extract_stack()):
        for pkg in ("distok_cli/", "diffusers/", "transformers/", "torch/optim/"):
            if pkg in frame.filename:
                return f"{pkg}{frame.filename.rsplit(pkg, 1)[1]}:{frame.lineno}"
    return "?"


def _nbytes(tree) -> int:
    leaves, _ = tree_flatten(tree)
    return sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))


class Counter(TorchDispatchMode):
    """Per stage: FLOPs, kernel-launching operators and bytes moved; ``stage`` is set by hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = ["other"]
        self.stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.calls: dict[str, int] = defaultdict(int)
        self.reads: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # stage → code line → n

    def enter(self, name: str) -> None:
        self.stack.append(name)
        self.calls[name] += 1

    def leave(self, name: str) -> None:
        assert self.stack.pop() == name

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._overloadpacket not in FLOPS:
            # Under inference mode composite operators (linear, layer_norm, to, reshape…) arrive whole:
            # count what they decompose into, as torch.utils.flop_counter does.
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if func.is_view or func in NO_KERNEL:
            return out
        if func is aten._local_scalar_dense.default:
            self.reads[self.stack[-1]][_caller()] += 1
        s = self.stats[self.stack[-1]]
        s["kernels"] += 1
        s["eager_bytes"] += (_nbytes((args, kwargs)) + _nbytes(out)) * FP16_OF_FP32
        formula = FLOPS.get(func._overloadpacket)
        if formula is not None:
            flops = formula(*args, **kwargs, out_val=out)
            s["flops"] += flops
            if func._overloadpacket in CONV:
                s["conv_flops"] += flops
        return out


def params_bytes_fp16(module) -> int:
    return sum(p.numel() for p in module.parameters()) * 2


def stage_weight_bytes(renderer, mods: dict, name: str) -> int:
    """fp16 bytes of a stage's weights: its module's, or for the decode (MoVQ or the SDXL VAE, as
    bench/stages.py hooks it) the decoder's and post_quant_conv's, the parts a decode runs."""
    if name in mods:
        return params_bytes_fp16(mods[name])
    import stages

    dec = stages.decoder(renderer)[1]
    return params_bytes_fp16(dec.decoder) + params_bytes_fp16(dec.post_quant_conv)


def per_call(counter: Counter, name: str) -> dict:
    """A stage's counts per call, and where it read tensor values back to Python (``.item()``, ``float``,
    ``bool``): on a GPU a sync wherever the tensor lives there."""
    n = counter.calls[name]
    reads = {where: k / n for where, k in sorted(counter.reads[name].items())}
    return {**{k: v / n for k, v in counter.stats[name].items()}, "host_reads": reads}


def floors(row: dict, peak: float = PEAK_FLOPS, hbm: float = HBM_BYTES_S, anchored: bool = True) -> dict:
    """The three floors of one call (on the H100 unless told), in ms, and (``anchored``: Kandinsky's stages)
    the anchors' implied cost per operator."""
    row["compute_floor_ms"] = row["flops"] / peak * 1e3
    row["weights_floor_ms"] = row["weight_bytes"] / hbm * 1e3
    row["eager_traffic_ms"] = row["eager_bytes"] / hbm * 1e3
    name = row["stage"] if anchored else None
    if name in ANCHOR_MS:
        row["anchor_eager_ms"] = ANCHOR_MS[name]
        row["anchor_us_per_kernel"] = ANCHOR_MS[name] * 1e3 / row["kernels"]
        row["anchor_share_of_compute_peak"] = row["compute_floor_ms"] / ANCHOR_MS[name]
    if name in ANCHOR_COMPILED_MS:
        row["anchor_compiled_ms"] = ANCHOR_COMPILED_MS[name]
        row["anchor_compiled_share_of_compute_peak"] = row["compute_floor_ms"] / ANCHOR_COMPILED_MS[name]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def count_train_step(cfg, text) -> dict:
    """One training step (n = 8) on ``text`` as train runs it, counted after two warm-up steps have filled
    its caches; eight classes keep the start-up caches small (the step's work does not depend on them)."""
    from distok_cli.backends.token_estimators import TextEstimator
    from distok_cli.files import recipes
    from distok_cli.method.trainer import Trainer

    small = ",".join(recipes.load("tiny").classes)
    tcfg = recipes.override(
        cfg, ["train.n=8", "estimator.kind=text", "train.estimate_every=100000", f"classes={small}"]
    )
    est = TextEstimator(text, list(tcfg.classes), "a photo of a {}", "a photo of a <>", 1.0, "bench")
    trainer = Trainer(tcfg, Path(tempfile.mkdtemp(prefix="distok-limits-")) / "run", text, est, "cpu")
    trainer.train_step()
    trainer.train_step()
    counter = Counter()
    with counter:
        counter.enter("train_step")
        trainer.train_step()
        counter.leave("train_step")
    return per_call(counter, "train_step")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--tiny", action="store_true", help="the offline twins at 64 px: checks the script in seconds")
    ap.add_argument("--sdxl", action="store_true", help="count SDXL (recipe sdxl-animals), floors on one H200")
    args = ap.parse_args()
    args.out = args.out or str(
        ROOT / "bench" / "results" / ("physical-limits-sdxl" if args.sdxl else "physical-limits")
    )
    torch.manual_seed(0)
    torch.set_grad_enabled(True)
    if args.sdxl:
        return sdxl(args)
    import fullsize
    import numpy as np
    import stages
    from PIL import Image

    from distok_cli.backends.blip import BlipItmEstimator
    from distok_cli.backends.kandinsky import KandinskyRenderer
    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.textside import TextSide
    from distok_cli.files import recipes

    t0 = time.monotonic()
    cfg = recipes.load("kandinsky21-animals")
    if args.tiny:
        from distok_cli.backends import twins

        cfg = recipes.override(cfg, ["render.size=64"])
        pipes = (twins.build_prior(), twins.build_decoder())
    else:
        pipes = fullsize.kandinsky_pipelines("cpu", list(cfg.classes))
    renderer = KandinskyRenderer(cfg.render, "cpu", "float32", pipelines=pipes)
    s = Settings.from_config(cfg.render, batch_size=1)
    s1 = Settings.from_config(recipes.override(cfg, ["render.steps=2", "render.prior_steps=2"]).render, batch_size=1)
    vec = torch.randn(1, renderer.text.dim) * 0.02
    rows: list[dict] = []

    counter = Counter()
    with stages.hooked(renderer, counter.enter, counter.leave), counter:
        renderer.render(vec, ["a photo of a <>"], [0], s1)
    mods = stages.render_modules(renderer)
    # Calls in a render at the recipe's settings: the step stages scale with the steps, the others (the text
    # encoder for the prompt and the empty one, the decode) are called as often as in the counted render.
    assert (counter.calls["prior_step"], counter.calls["unet_step"]) == (s1.prior_steps, s1.steps)
    calls = {**counter.calls, "prior_step": s.prior_steps, "unet_step": s.steps}
    for name in ("prior_text", "prior_step", "unet_step", "movq_decode"):
        weights = stage_weight_bytes(renderer, mods, name)
        rows.append(
            floors({"stage": name, "calls_per_render": calls[name], **per_call(counter, name), "weight_bytes": weights})
        )
    other = {**counter.stats["other"], "host_reads": dict(sorted(counter.reads["other"].items()))}
    print(json.dumps(rows, indent=1), flush=True)

    text = renderer.text
    rows.append(
        floors(
            {"stage": "train_step", **count_train_step(cfg, text), "weight_bytes": 2 * params_bytes_fp16(text.encoder)}
        )
    )  # read forward and backward
    # The anchor's own work (20.9 ms): CLIP-L forward and backward into one injected row, 8 prompts × 77
    # positions. Only this row matches the anchor; the whole step above does more (MLPs, losses, Adam).
    v = (torch.randn(8, text.dim) * 0.02).requires_grad_()
    counter = Counter()
    with fullsize.padded_to_77(text), counter:
        counter.enter("text_fwd_bwd")
        text.encode([TextSide.fill("a photo of a <>")] * 8, v).float().sum().backward()
        counter.leave("text_fwd_bwd")
    rows.append(
        floors(
            {
                "stage": "text_fwd_bwd",
                **per_call(counter, "text_fwd_bwd"),
                "weight_bytes": 2 * params_bytes_fp16(text.encoder),
            }
        )
    )

    model, proc = twins.build_blip() if args.tiny else fullsize.blip_itm("cpu")
    blip = BlipItmEstimator(cfg.estimator, "cpu", "float32", built=(model, proc))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    counter = Counter()
    with torch.no_grad(), counter:
        counter.enter("estimate")
        blip.distributions([image], list(cfg.classes))
        counter.leave("estimate")
    rows.append(
        floors({"stage": "estimate", **per_call(counter, "estimate"), "weight_bytes": params_bytes_fp16(model)})
    )

    render_total = {
        k: sum(r[k] * r["calls_per_render"] for r in rows if "calls_per_render" in r)
        for k in ("flops", "kernels", "compute_floor_ms", "weights_floor_ms", "eager_traffic_ms")
    }
    result = {
        "what": "counted on the CPU (fp32 run, bytes given as fp16); floors for one H100 SXM5",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "peak_flops": PEAK_FLOPS,
        "hbm_bytes_s": HBM_BYTES_S,
        "render": {
            "size": s.size,
            "prior_steps": s.prior_steps,
            "steps": s.steps,
            "guidance": s.guidance,
            "prior_guidance": s.prior_guidance,
        },
        "counted_render": {"prior_steps": s1.prior_steps, "steps": s1.steps},
        "stages": rows,
        "render_per_concept_b1": {k: round(v, 4) for k, v in render_total.items()},
        "render_other": other,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(result))
    print(table(result), end="")


def sdxl(args) -> None:
    """The SDXL count (``--sdxl``): a 1024 px render split by stage, and one training step; H200 floors."""
    import fullsize
    import stages

    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.sdxl import SDXLRenderer
    from distok_cli.files import recipes

    t0 = time.monotonic()
    cfg = recipes.load("sdxl-animals")
    if args.tiny:
        from distok_cli.backends import twins

        cfg = recipes.override(cfg, ["render.size=64"])
        pipe = twins.build_sdxl()
    else:
        pipe = fullsize.sdxl_pipeline("cpu", list(cfg.classes))
    renderer = SDXLRenderer(cfg.render, "cpu", "float32", pipeline=pipe)
    s = Settings.from_config(cfg.render, batch_size=1)
    s1 = Settings.from_config(recipes.override(cfg, ["render.steps=2"]).render, batch_size=1)
    vec = torch.randn(1, renderer.text.dim) * 0.02
    counter = Counter()
    with stages.hooked(renderer, counter.enter, counter.leave), counter:
        renderer.render(vec, ["a photo of a <>"], [0], s1)
    assert counter.calls["unet_step"] == s1.steps
    calls = {**counter.calls, "unet_step": s.steps}
    mods = stages.render_modules(renderer)
    rows: list[dict] = []
    for name in ("text_l", "text_g", "unet_step", "vae_decode"):
        weights = stage_weight_bytes(renderer, mods, name)
        row = floors(
            {"stage": name, "calls_per_render": calls[name], **per_call(counter, name), "weight_bytes": weights},
            H200["peak_flops"],
            H200["hbm_bytes_s"],
            anchored=False,
        )
        if name == "vae_decode":  # as diffusers runs it for an fp16 render of SDXL base (force_upcast): fp32
            conv = row.get("conv_flops", 0.0)
            row["fp32_compute_floor_ms"] = round(
                (conv / H200["tf32_flops"] + (row["flops"] - conv) / H200["fp32_flops"]) * 1e3, 4
            )
            row["fp32_traffic_ms"] = round(row["eager_bytes"] * 2 / H200["hbm_bytes_s"] * 1e3, 4)
        rows.append(row)
    other = {**counter.stats["other"], "host_reads": dict(sorted(counter.reads["other"].items()))}
    print(json.dumps(rows, indent=1), flush=True)

    encoders = params_bytes_fp16(renderer.pipe.text_encoder) + params_bytes_fp16(renderer.pipe.text_encoder_2)
    rows.append(
        floors(
            {"stage": "train_step", **count_train_step(cfg, renderer.text), "weight_bytes": 2 * encoders},
            H200["peak_flops"],
            H200["hbm_bytes_s"],
            anchored=False,
        )
    )

    staged = [r for r in rows if "calls_per_render" in r]
    total = {
        k: sum(r[k] * r["calls_per_render"] for r in staged)
        for k in ("flops", "kernels", "compute_floor_ms", "weights_floor_ms", "eager_traffic_ms")
    }
    dec = rows[3]
    total["compute_floor_ms_fp32_decode"] = (
        total["compute_floor_ms"] - dec["compute_floor_ms"] + dec["fp32_compute_floor_ms"]
    )
    total["eager_traffic_ms_fp32_decode"] = total["eager_traffic_ms"] - dec["eager_traffic_ms"] + dec["fp32_traffic_ms"]
    result = {
        "what": "counted on the CPU (fp32 run, bytes given as fp16); floors for one H200 SXM",
        "card": H200,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "tiny": args.tiny,
        "render": {"size": s.size, "steps": s.steps, "guidance": s.guidance, "scheduler": cfg.render.scheduler},
        "counted_render": {"steps": s1.steps},
        "stages": rows,
        "render_per_image_b1": {k: round(v, 4) for k, v in total.items()},
        "render_other": other,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(sdxl_table(result))
    print(sdxl_table(result), end="")


def host_reads(res: dict, rest: str) -> list[str]:
    """One line per stage, then the rest of a render: where values were read back, by code line."""
    lines = []
    for r in res["stages"]:
        reads = ", ".join(f"`{where}` × {n:g}" for where, n in r["host_reads"].items()) or "none"
        lines.append(f"- {r['stage']}: {reads}")
    other = ", ".join(f"`{w}` × {n:g}" for w, n in res["render_other"]["host_reads"].items()) or "none"
    return lines + [f"- rest of a render ({rest}): {other}"]


def sdxl_table(res: dict) -> str:
    card = res["card"]
    lines = [
        f"# Physical limits, SDXL (counted, not timed; {res['date']}, torch {res['torch']})",
        "",
        "`python bench/physical_limits.py --sdxl`: distok's SDXLRenderer and training step run once on the CPU with",
        "SDXL base 1.0's architectures and random weights; FLOPs, kernels (non-view ATen operators) and bytes per",
        f"call of each stage; floors on one {card['card']} ({card['peak_flops'] / 1e12:.0f} TFLOP/s fp16, "
        f"{card['hbm_bytes_s'] / 1e12:.2f} TB/s; the H100's compute floors are the same). No anchor: nobody has timed SDXL here.",
        "",
        "| stage (per call) | calls / render | GFLOP | kernels | fp16 weights MB | eager traffic MB | compute floor ms | weights floor ms | eager traffic ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["stages"]:
        lines.append(
            "| {} | {} | {:,.1f} | {:,.0f} | {:,.0f} | {:,.0f} | {:.3f} | {:.3f} | {:.3f} |".format(
                r["stage"],
                r.get("calls_per_render", "—"),
                r["flops"] / 1e9,
                r["kernels"],
                r["weight_bytes"] / 1e6,
                r["eager_bytes"] / 1e6,
                r["compute_floor_ms"],
                r["weights_floor_ms"],
                r["eager_traffic_ms"],
            )
        )
    dec = next(r for r in res["stages"] if r["stage"] == "vae_decode")
    lines += [
        "",
        f"The VAE decode as diffusers runs it for an fp16 render (SDXL base's VAE says force_upcast, so it is cast "
        f"to fp32 for the decode): {dec.get('conv_flops', 0) / 1e9:,.1f} of its {dec['flops'] / 1e9:,.1f} GFLOP are "
        f"convolutions (TF32, {card['tf32_flops'] / 1e12:.0f} TFLOP/s), the rest in fp32 ({card['fp32_flops'] / 1e12:.0f} "
        f"TFLOP/s): compute floor {dec['fp32_compute_floor_ms']:.2f} ms, eager traffic {dec['fp32_traffic_ms']:.2f} ms.",
        "",
        "Values read back to the host per call, by code line:",
        "",
    ]
    lines += host_reads(res, f"scheduler, pipeline; the counted render of {res['counted_render']['steps']} steps")
    t = res["render_per_image_b1"]
    lines += [
        "",
        f"One render, one image ({res['render']['steps']} {res['render']['scheduler']} steps, {res['render']['size']} px, "
        f"guidance {res['render']['guidance']}): {t['flops'] / 1e12:,.2f} TFLOP, {t['kernels']:,.0f} kernels; "
        f"compute floor {t['compute_floor_ms']:.0f} ms with an fp16 decode, {t['compute_floor_ms_fp32_decode']:.0f} ms "
        f"with diffusers' fp32 decode; weights floor {t['weights_floor_ms']:.0f} ms; eager traffic "
        f"{t['eager_traffic_ms']:.0f} ms ({t['eager_traffic_ms_fp32_decode']:.0f} ms with the fp32 decode).",
        "",
    ]
    return "\n".join(lines)


def table(res: dict) -> str:
    lines = [
        f"# Physical limits (counted, not timed; {res['date']}, torch {res['torch']})",
        "",
        "`python bench/physical_limits.py`: distok's own code run once on the CPU with the full-size random-weight",
        "architectures; FLOPs, kernels (non-view ATen operators) and bytes per call of each stage; floors on one",
        "H100 SXM5 (989 TFLOP/s fp16, 3.35 TB/s). Anchors: ../shared/notes/gpu-anchors.md (eager, fp16, one H100).",
        "",
        "| stage (per call) | calls / render | GFLOP | kernels | fp16 weights MB | eager traffic MB | compute floor ms | weights floor ms | eager traffic ms | anchor eager ms | µs per kernel at anchor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["stages"]:
        lines.append(
            "| {} | {} | {:,.1f} | {:,.0f} | {:,.0f} | {:,.0f} | {:.3f} | {:.3f} | {:.3f} | {} | {} |".format(
                r["stage"],
                r.get("calls_per_render", "—"),
                r["flops"] / 1e9,
                r["kernels"],
                r["weight_bytes"] / 1e6,
                r["eager_bytes"] / 1e6,
                r["compute_floor_ms"],
                r["weights_floor_ms"],
                r["eager_traffic_ms"],
                r.get("anchor_eager_ms", "—"),
                f"{r['anchor_us_per_kernel']:.1f}" if "anchor_us_per_kernel" in r else "—",
            )
        )
    lines += [
        "",
        "Values read back to the host per call, by code line (on a GPU each read of a value that lives there is a "
        "sync, and a CUDA graph must end before it; a CPU run cannot tell where a value would live):",
        "",
    ]
    counted = res["counted_render"]
    lines += host_reads(
        res, f"schedulers, pipelines; the counted render of {counted['prior_steps']} + {counted['steps']} steps"
    )
    t = res["render_per_concept_b1"]
    lines += [
        "",
        f"One render, one concept (prior {res['render']['prior_steps']} + decoder {res['render']['steps']} steps, "
        f"{res['render']['size']} px): {t['flops'] / 1e12:,.2f} TFLOP, {t['kernels']:,.0f} kernels; "
        f"compute floor {t['compute_floor_ms']:.0f} ms, weights floor {t['weights_floor_ms']:.0f} ms, "
        f"eager traffic {t['eager_traffic_ms']:.0f} ms.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

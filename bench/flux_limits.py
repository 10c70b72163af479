"""Counted, not timed: what a FLUX.1 render and a FLUX training step cost in FLOPs and weight bytes, and the
floors that sets on one H100 (no GPU, no weights, no memory: the full-size modules run on PyTorch's
``meta`` device, which carries shapes only, under ``torch.utils.flop_counter``).

Counted per call, at the shapes the recipe ``flux-animals`` uses (1024 px, so 64 × 64 = 4,096 image tokens;
T5 padded to ``max_sequence_length`` 256 for schnell, 512 for dev, as diffusers' FluxPipeline runs it):
  - the transformer (FluxTransformer2DModel, FLUX.1's config: 19 double and 38 single blocks, 24 heads of
    128), one denoising step, for schnell's and dev's sequence lengths (dev's guidance embedder adds a small
    MLP, not counted; dev is guidance-distilled, so one pass a step, no CFG batch);
  - T5-XXL's encoder (24 layers, d_model 4096, d_ff 10240, 64 heads) over the padded sequence;
  - CLIP ViT-L/14's text encoder over 77 positions;
  - the VAE decode (16 latent channels, 128 × 128 → 1024 × 1024);
  - the training step's text side: CLIP-L and T5 forward and backward to the injected rows, n = 8 prompts of
    "a photo of a <>" (7 CLIP positions after distok's trim; 8 T5 positions, masked mean).
Floors on one H100 SXM5 80 GB: 989 TFLOP/s dense bf16 tensor peak, 3.35 TB/s HBM3; weights in bf16 are read
at least once per call. A render is text encoders once + steps × transformer + one decode.

Usage:  python bench/flux_limits.py [--out bench/results/flux-limits]   (writes .json and .md; ~1 min)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
PEAK_FLOPS = 989e12
HBM_BYTES_S = 3.35e12
STEPS = {"schnell": 4, "dev": 28}
SEQ = {"schnell": 256, "dev": 512}


def count(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def bf16_bytes(module) -> int:
    return 2 * sum(p.numel() for p in module.parameters())


def build():
    """FLUX.1's modules at full size on the meta device: bench/fullsize.py's configs, shapes only."""
    sys.path.insert(0, str(ROOT / "bench"))
    import fullsize

    pipe = fullsize.flux_pipeline("meta")
    # in float32 like the meta inputs below (a dtype costs nothing on meta, and FLOPs do not depend on it)
    return tuple(m.float() for m in (pipe.transformer, pipe.text_encoder_2, pipe.text_encoder, pipe.vae))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "flux-limits")
    args = ap.parse_args()
    transformer, t5, clip, vae = build()
    meta = torch.device("meta")
    rows: dict[str, dict[str, float]] = {}

    def row(name: str, flops: float, weight_bytes: int) -> None:
        rows[name] = {
            "tflop": flops / 1e12,
            "weights_GB_bf16": weight_bytes / 1e9,
            "floor_ms": max(flops / PEAK_FLOPS, weight_bytes / HBM_BYTES_S) * 1e3,
        }

    img = 64 * 64
    with torch.no_grad():
        for variant, txt in SEQ.items():
            row(
                f"transformer step ({variant}, {img} image + {txt} text tokens)",
                count(
                    lambda txt=txt: transformer(
                        hidden_states=torch.zeros(1, img, 64, device=meta),
                        encoder_hidden_states=torch.zeros(1, txt, 4096, device=meta),
                        pooled_projections=torch.zeros(1, 768, device=meta),
                        timestep=torch.ones(1, device=meta),
                        img_ids=torch.zeros(img, 3, device=meta),
                        txt_ids=torch.zeros(txt, 3, device=meta),
                        return_dict=False,
                    )
                ),
                bf16_bytes(transformer),
            )
            row(
                f"T5-XXL encoder ({txt} positions)",
                count(lambda txt=txt: t5(input_ids=torch.zeros(1, txt, dtype=torch.long, device=meta))),
                bf16_bytes(t5),
            )
        row(
            "CLIP-L text encoder (77 positions)",
            count(lambda: clip(input_ids=torch.zeros(1, 77, dtype=torch.long, device=meta))),
            bf16_bytes(clip),
        )
        row(
            "VAE decode (1024 px)",
            count(lambda: vae.decode(torch.zeros(1, 16, 128, 128, device=meta))),
            bf16_bytes(vae.decoder),
        )

    def train_text() -> None:
        # gradients reach the token through the embedding lookup's output, as TextSide's hook injects it
        for model, emb, n_pos, width in (
            (clip, clip.get_input_embeddings(), 7, 768),
            (t5, t5.encoder.embed_tokens, 8, 4096),
        ):
            delta = torch.zeros(8, n_pos, width, device=meta, requires_grad=True)
            handle = emb.register_forward_hook(lambda m, i, o, d=delta: o + d)
            try:
                out = model(input_ids=torch.zeros(8, n_pos, dtype=torch.long, device=meta)).last_hidden_state
                out.sum().backward()
            finally:
                handle.remove()

    row("training step, text side (n = 8: CLIP-L + T5 fwd + bwd)", count(train_text), bf16_bytes(clip) + bf16_bytes(t5))
    renders = {}
    for variant, txt in SEQ.items():
        step = rows[f"transformer step ({variant}, {img} image + {txt} text tokens)"]
        parts = [rows[f"T5-XXL encoder ({txt} positions)"], rows["CLIP-L text encoder (77 positions)"]]
        parts += [rows["VAE decode (1024 px)"]]
        flops = STEPS[variant] * step["tflop"] + sum(p["tflop"] for p in parts)
        floor = STEPS[variant] * step["floor_ms"] + sum(p["floor_ms"] for p in parts)
        renders[variant] = {"steps": STEPS[variant], "tflop": flops, "floor_ms": floor}
    result = {
        "per_call": rows,
        "render_1024": renders,
        "peak_tflops": PEAK_FLOPS / 1e12,
        "hbm_TB_s": HBM_BYTES_S / 1e12,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# FLUX.1: counted FLOPs and H100 floors (bench/flux_limits.py; meta device, no weights)",
        "",
        "| call | TFLOP | weights (bf16) | floor on one H100 |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v['tflop']:.2f} | {v['weights_GB_bf16']:.2f} GB | {v['floor_ms']:.1f} ms |"
            for k, v in rows.items()
        ),
        "",
        "| render, 1024 px, batch 1 | steps | TFLOP | floor on one H100 |",
        "|---|---|---|---|",
        *(
            f"| FLUX.1-{k} | {v['steps']} | {v['tflop']:.0f} | {v['floor_ms'] / 1000:.2f} s |"
            for k, v in renders.items()
        ),
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

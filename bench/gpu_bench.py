"""GPU benchmark of distok's own code paths on full-size, random-weight architectures (not a timed test).

Weights cannot be downloaded on the device machine, but speed does not depend on weight values, so
random tensors of the real shapes give real timings. Builds, in memory and in fp16:
  - the Kandinsky 2.1 prior pipeline: CLIP ViT-L/14 text encoder (with projection), CLIP ViT-L/14 image
    encoder, PriorTransformer (defaults = the real prior);
  - the Kandinsky 2.1 decoder pipeline: UNet (real config), MoVQ (real config), M-CLIP (XLM-R large);
  - BLIP image-text matching with a ViT-L/384 vision tower.
Then times, with CUDA synchronisation, after warm-up, the project's code: KandinskyRenderer.render (prior
25 + decoder 50 steps, 512 px, guidance 4) at batch 1 and larger batches, BlipItmEstimator on 60
classes, a DisTok training step (Trainer.train_step, n = 8 and 64), and peak VRAM while rendering.

Usage on the GPU machine (see bench/run_gpu.sh):   python bench/gpu_bench.py --out $OUT
Smoke test on a CPU (tiny twins' sizes, same code): python bench/gpu_bench.py --smoke --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS: dict[str, object] = {}


def log(key: str, value: object) -> None:
    RESULTS[key] = value
    print(json.dumps({key: value}), flush=True)


def sync() -> None:
    if torch.cuda.is_available():
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


UNET = dict(
    act_fn="silu", addition_embed_type="text_image", addition_embed_type_num_heads=64, attention_head_dim=64,
    block_out_channels=[384, 768, 1152, 1536], class_embed_type=None, cross_attention_dim=768,
    down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D",
                      "SimpleCrossAttnDownBlock2D"],
    encoder_hid_dim=1024, encoder_hid_dim_type="text_image_proj", in_channels=4, layers_per_block=3,
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", norm_num_groups=32, out_channels=8,
    resnet_time_scale_shift="scale_shift", sample_size=64,
    up_block_types=["SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D",
                    "ResnetUpsampleBlock2D"],
)
MOVQ = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
    up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
    num_vq_embeddings=16384, block_out_channels=(128, 256, 256, 512), vq_embed_dim=4, layers_per_block=2,
    norm_type="spatial",
)


def full_size_pipelines(device: str):
    """Kandinsky 2.1 prior and decoder pipelines with the real architectures and random weights."""
    from diffusers import (
        DDIMScheduler,
        KandinskyPipeline,
        KandinskyPriorPipeline,
        PriorTransformer,
        UnCLIPScheduler,
        UNet2DConditionModel,
        VQModel,
    )
    from diffusers.pipelines.kandinsky.text_encoder import MCLIPConfig, MultilingualCLIP
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from distok_cli.backends import twins

    tok = twins.clip_tokenizer()  # speed does not depend on the vocabulary: CLIP always pads to 77
    with torch.device(device):
        te = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu",
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()
        ie = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=768, hidden_act="quick_gelu")).eval()
        prior = PriorTransformer().eval()
    prior_pipe = KandinskyPriorPipeline(
        prior=prior, image_encoder=ie, text_encoder=te, tokenizer=tok,
        scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample", num_train_timesteps=1000,
                                  clip_sample=True, clip_sample_range=10.0),
        image_processor=CLIPImageProcessor(size=224, crop_size=224))
    xt = twins.xlmr_tokenizer()
    with torch.device(device):
        mclip = MultilingualCLIP(MCLIPConfig(transformerDimSize=1024, imageDimSize=768, hidden_size=1024,
                                             intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                                             vocab_size=250002, pad_token_id=xt.pad_token_id,
                                             max_position_embeddings=514)).eval()
        unet = UNet2DConditionModel(**UNET).eval()
        movq = VQModel(**MOVQ).eval()
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012,
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
    dec = KandinskyPipeline(text_encoder=mclip, tokenizer=xt, unet=unet, scheduler=ddim, movq=movq)
    return prior_pipe, dec


def full_size_blip(device: str):
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    from distok_cli.backends import twins
    from distok_cli.recipes import ANIMALS_60

    tok = twins.bert_tokenizer(twins.BLIP_WORDS + ANIMALS_60)
    cfg = BlipConfig(
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=384, patch_size=16),
        text_config=dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, encoder_hidden_size=1024, pad_token_id=tok.pad_token_id),
    )
    with torch.device(device):
        model = BlipForImageTextRetrieval(cfg).eval()
    return model, BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}), tokenizer=tok)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny twins on the CPU: checks the script, times nothing real")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--batches", default="4,8,16")
    args = ap.parse_args()

    from distok_cli import recipes
    from distok_cli.backends.estimate import BlipItmEstimator
    from distok_cli.backends.render import KandinskyRenderer, Settings
    from distok_cli.method.estimators import TextEstimator
    from distok_cli.method.trainer import Trainer

    device = "cpu" if args.smoke else "cuda"
    dtype = "float32" if args.smoke else "float16"
    log("env", {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                "diffusers": __import__("diffusers").__version__, "transformers": __import__("transformers").__version__,
                "smoke": args.smoke, "date": time.strftime("%Y-%m-%d")})
    cfg = recipes.load("kandinsky21-animals")
    if args.smoke:
        from distok_cli.backends import twins

        pipes = (twins.build_prior(), twins.build_decoder())
        blip_built = twins.build_blip()
        cfg = recipes.override(cfg, ["render.size=64", "render.steps=2", "render.prior_steps=2"])
        reps, batches = 1, [2]
    else:
        t = time.perf_counter()
        pipes = full_size_pipelines(device)
        blip_built = full_size_blip(device)
        log("build_s", round(time.perf_counter() - t, 1))
        reps, batches = 3, [int(b) for b in args.batches.split(",")]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    renderer = KandinskyRenderer(cfg.render, device, dtype, pipelines=pipes)
    s1 = Settings.from_config(cfg.render, batch_size=1)
    g = torch.Generator().manual_seed(0)

    def render(b: int):
        v = torch.randn(b, renderer.text.dim, generator=g) * 0.02
        return lambda: renderer.render(v, ["a photo of a <>"] * b, list(range(b)), s1)

    log("render_s_per_concept_b1", round(bench(render(1), 1, reps), 4))
    if device == "cuda":
        log("render_peak_vram_GiB_b1", round(torch.cuda.max_memory_allocated() / 2**30, 2))
    best = None
    for b in batches:
        try:
            per = bench(render(b), 1, max(1, reps - 1)) / b
            log(f"render_s_per_concept_b{b}", round(per, 4))
            best = per if best is None or per < best else best
            if device == "cuda":
                log(f"render_peak_vram_GiB_b{b}", round(torch.cuda.max_memory_allocated() / 2**30, 2))
        except torch.cuda.OutOfMemoryError as exc:  # pragma: no cover - GPU only
            log(f"render_s_per_concept_b{b}", f"OOM: {str(exc)[:120]}")
            torch.cuda.empty_cache()
    log("render_s_per_concept_best", round(best, 4) if best else None)
    # Prior-only (the prior estimator; also how much of a concept the prior costs).
    v8 = torch.randn(8, renderer.text.dim, generator=g) * 0.02
    log("prior_s_per_concept_b8", round(bench(lambda: renderer.image_embeds(v8, ["a photo of a <>"] * 8, list(range(8)), s1), 1, reps) / 8, 4))

    blip = BlipItmEstimator(cfg.estimator, device, dtype, built=blip_built)
    imgs = render(8)()
    log("estimate_s_per_image_60classes_b1", round(bench(lambda: blip.distributions(imgs[:1], cfg.classes), 1, reps), 4))
    log("estimate_s_per_image_60classes_b8", round(bench(lambda: blip.distributions(imgs, cfg.classes), 1, reps) / 8, 4))

    # Training step: text side only (the estimation task's renders are counted separately above).
    text = renderer.text
    for n in (8, 64):
        tcfg = recipes.override(cfg, [f"train.n={n}", "estimator.kind=text"])
        est = TextEstimator(text, list(tcfg.classes), "a photo of a {}", "a photo of a <>", 1.0, "bench")
        trainer = Trainer(tcfg, Path(args.out) / "bench-run", text, est, device)
        step = bench(trainer.train_step, 3, 10 if not args.smoke else 2)
        log(f"train_step_ms_n{n}", round(step * 1000, 2))
    log("train_20k_steps_min_n8", round(RESULTS["train_step_ms_n8"] * 20000 / 60000, 2))
    if device == "cuda":
        log("peak_vram_GiB", round(torch.cuda.max_memory_allocated() / 2**30, 2))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_bench.json").write_text(json.dumps(RESULTS, indent=1) + "\n")


if __name__ == "__main__":
    main()

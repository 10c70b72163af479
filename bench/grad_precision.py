"""Does training need loss scaling in fp16? The token's gradient through the full-size CLIP ViT-L/14 text
encoder (random weights, bench/fullsize.py) in fp16 and bf16 against fp32, on the CPU (not a timed test).

Usage: python bench/grad_precision.py [--out bench/results/grad-precision.json]
Loss: L_cst between E("a photo of a <token>") and E("a pig sheep") for 8 random tokens (L_mix's clipped
cosines give no gradient on random weights, where every prompt embedding is nearly parallel).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "grad-precision.json"))
    args = ap.parse_args()
    import fullsize

    from distok_cli.backends.textside import TextSide
    from distok_cli.method import losses

    tok = fullsize.clip_tokenizer(["pig", "sheep"])
    enc32 = fullsize.clip_text("cpu", tok)
    vec0 = torch.randn(8, 768, generator=torch.Generator().manual_seed(0)) * 0.015
    grads, report = {}, {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "dtypes": {}}
    for name in ("float32", "bfloat16", "float16"):
        text = TextSide(copy.deepcopy(tok), copy.deepcopy(enc32).to(getattr(torch, name)), "bench:clip-l")
        with torch.no_grad():
            target = text.encode(["a pig sheep"] * 8)
        v = vec0.clone().requires_grad_(True)
        loss = losses.l_cst(text.encode([TextSide.fill("a photo of a <>")] * 8, v), target).mean()
        loss.backward()
        g = grads[name] = v.grad.float()
        report["dtypes"][name] = {
            "loss": round(float(loss.detach()), 5),
            "grad_abs_mean": float(g.abs().mean()),
            "grad_zero_fraction": float((g == 0).float().mean()),
        }
    for name, g in grads.items():
        cos = torch.nn.functional.cosine_similarity(g.flatten(), grads["float32"].flatten(), dim=0)
        report["dtypes"][name]["grad_cosine_to_float32"] = round(float(cos), 6)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

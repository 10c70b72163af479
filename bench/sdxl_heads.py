"""D_tok for a two-part token space: one 2048-wide output (kept) or one head per part, measured on the SDXL twin.

    python bench/sdxl_heads.py --seeds 0 1 2 --steps 300

* **joint** (``train.heads: joint``): ``D_tok`` = ω → H → (d_l + d_g), one MLP whose output is both parts.
* **parts** (``train.heads: parts``, kept): one MLP per part, ω → H → d_l and ω → H → d_g (a hidden layer
  each). Two linear heads on
  one shared hidden layer would be the joint model exactly (a [d_l + d_g, H] matrix *is* two heads), so the
  only other design is separate hidden layers.
* **joint-2h**: one joint MLP with twice the hidden width (``parts`` has 2H hidden units in all), to tell
  structure from capacity.

Both train with the ``sdxl-tiny`` recipe (distok's objective; the text-side estimator for the pool, so no
render) and the same seeds; scored by KL(p ‖ q) of the matching task's text-side estimate on the 40
unseen distributions of the protocol's test split, in every training style, beside the raw mix Σ p_i t_i.
The twin's weights are random: this compares how well each D_tok *optimises* the objective through
SDXL-shaped encoders, not what its tokens look like. Writes ``bench/results/sdxl-heads-cpu.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("joint", "parts", "joint-2h")
sys.path.insert(0, str(ROOT))


def wide_joint_model(base):
    """``base`` with one joint D_tok of twice the hidden width: the parts model's hidden units, shared."""
    import torch

    from distok_cli.method.model import mlp

    base.D_tok = mlp(base.latent_dim, 2 * base.hidden, base.dim)
    if base.residual:
        with torch.no_grad():
            base.D_tok[2].weight.zero_()
            base.D_tok[2].bias.zero_()
    return base


def run_one(variant: str, seed: int, steps: int, test_set: list[dict[str, float]]) -> dict:
    import torch

    from distok_cli.files import recipes
    from distok_cli.method import trainer as trainer_mod

    heads = "parts" if variant == "parts" else "joint"
    recipe = recipes.load(
        "sdxl-tiny",
        [
            "estimator.kind=text",
            f"seed={seed}",
            f"train.steps={steps}",
            "train.checkpoint_every=100000",
            f"train.heads={heads}",
        ],
    )
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tr = trainer_mod.build(recipe, Path(tmp) / "run", "cpu")
        if variant == "joint-2h":
            torch.manual_seed(seed)
            tr.model = wide_joint_model(tr.model)
            t = recipe.train
            tr.opt = torch.optim.AdamW(tr.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        params = sum(p.numel() for p in tr.model.D_tok.parameters())
        t0 = time.perf_counter()
        tr.train(steps)
        seconds = time.perf_counter() - t0
        classes = tr.classes
        p = torch.tensor([[d.get(c, 0.0) for c in classes] for d in test_set], dtype=torch.float32)
        mix = p @ tr.T
        kls, raws = [], []
        with torch.no_grad():
            _, tokens = tr.model(mix)
            for s in range(len(recipe.train.styles)):
                kls.append(float(tr.scorer.kl(p, tokens, [s] * len(p)).mean()))
                raws.append(float(tr.scorer.kl(p, mix, [s] * len(p)).mean()))
    return {
        "variant": variant,
        "seed": seed,
        "steps": steps,
        "kl": statistics.mean(kls),
        "raw_mix": statistics.mean(raws),
        "D_tok_params": params,
        "seconds_per_step": seconds / steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    from distok_cli.files import recipes
    from distok_cli.method.evaluation import protocol_set

    test_set = protocol_set(list(recipes.load("sdxl-tiny").classes), "test")
    rows = []
    for seed in args.seeds:
        for variant in VARIANTS:
            r = run_one(variant, seed, args.steps, test_set)
            print(
                f"{variant:6s} seed {seed}: KL {r['kl']:.4f} (raw mix {r['raw_mix']:.4f}), "
                f"{r['seconds_per_step'] * 1000:.1f} ms/step, D_tok {r['D_tok_params']} parameters",
                flush=True,
            )
            rows.append(r)
    out = ROOT / "bench" / "results"
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, one torch thread",
        "steps": args.steps,
        "seeds": args.seeds,
        "test_set": "protocol test split (40 distributions), every training style",
    }
    (out / "sdxl-heads-cpu.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1) + "\n")
    lines = [
        f"# D_tok on the SDXL twin: one joint output vs one head per part ({meta['date']})",
        "",
        f"`python bench/sdxl_heads.py --seeds {' '.join(map(str, args.seeds))} --steps {args.steps}` on "
        f"{meta['machine']}. Recipe `sdxl-tiny` (encoders 32 + 64 wide, hidden 64), distok's objective, "
        "text-side pool estimator. KL(p ‖ q) on the 40 unseen distributions of the test split, mean over "
        "the 8 training styles; the twin is random, so this measures optimisation, not pictures.",
        "",
        "| D_tok | KL, mean ± sd over seeds | raw mix | KL / raw mix | D_tok parameters | ms per step |",
        "|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        rs = [r for r in rows if r["variant"] == variant]
        kl = [r["kl"] for r in rs]
        raw = statistics.mean(r["raw_mix"] for r in rs)
        sd = statistics.stdev(kl) if len(kl) > 1 else 0.0
        lines.append(
            f"| {variant} | {statistics.mean(kl):.4f} ± {sd:.4f} | {raw:.4f} | "
            f"{statistics.mean(kl) / raw:.3f} | {rs[0]['D_tok_params']:,} | "
            f"{statistics.mean(r['seconds_per_step'] for r in rs) * 1000:.1f} |"
        )
    (out / "sdxl-heads-cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

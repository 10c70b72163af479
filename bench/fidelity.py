"""Method fidelity under the protocol (BENCHMARKS.md, "Method fidelity"): arms × seeds on the minilm recipe,
every figure beside the raw mix (Σ p_i t_i into the prompt, no model), per style.

    python bench/fidelity.py --split tuning --arms demo no-residual one-style --seeds 0     # method decisions
    python bench/fidelity.py --split test --arms paper demo default --seeds 0 1 2          # reported figures

``--split tuning``: 40 distributions generated with the tuning seed, scored in the 3 tuning styles;
``--split test``: 40 generated with the test seed (never used for a decision), in the 6 held-out styles of
``recipes/eval/styles-v1.json``. Both also score the training style ("a photo of a"). Each run is
``distok train -r minilm-animals`` (with the arm's ``--set`` values) then ``distok eval --json``; runs use
one torch thread each, ``--jobs`` at a time. Writes ``bench/results/fidelity-minilm-SPLIT.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from distok_cli.files.recipes import PAPER_METHOD  # noqa: E402

DEMO = ["train.n=32", "train.steps=300"]  # what `distok demo` trains (distok_cli/api/tour.py)
SHORT = ["train.n=32", "train.steps=250"]  # the short run every variant was measured at
#: 40 training styles for the breadth arms (issue 30): the 8 default ones and 32 more prompt forms, none of them a
#: tuning or held-out style of recipes/eval/styles-v1.json (nor a near copy: no statue, figurine or stitch).
WIDE = [
    "a photo of a",
    "a sketch of a",
    "a painting of a",
    "a cartoon of a",
    "a 3d render of a",
    "a close-up photo of a",
    "a black and white photo of a",
    "an illustration of a",
    "an oil painting of a",
    "a pencil drawing of a",
    "a charcoal drawing of a",
    "an ink drawing of a",
    "a comic of a",
    "an anime drawing of a",
    "a low poly model of a",
    "a clay model of a",
    "a wood carving of a",
    "a tattoo of a",
    "a poster of a",
    "a blurry photo of a",
    "a bright photo of a",
    "a dark photo of a",
    "a cropped photo of a",
    "a low resolution photo of a",
    "a rendering of a",
    "a graffiti of a",
    "a chalk drawing of a",
    "a crayon drawing of a",
    "a line art of a",
    "a portrait of a",
    "a snapshot of a",
    "a postcard of a",
    "a sticker of a",
    "a cinematic still of a",
    "a vintage photo of a",
    "a polaroid of a",
    "a woodcut print of a",
    "an engraving of a",
    "a pastel drawing of a",
    "a digital painting of a",
]
WIDE_SET = "train.styles=[" + ", ".join(WIDE) + "]"
#: name → (--set values, what it is). Arms other than paper/demo/default are the variants tried.
ARMS: dict[str, tuple[list[str], str]] = {
    "paper": (
        [*PAPER_METHOD, "train.n=8", "train.steps=1500"],
        "the paper's objective as in 0.3.0's demo (1,500 steps, n = 8)",
    ),
    "paper-6000": (
        [*PAPER_METHOD, "train.n=8", "train.steps=6000"],
        "the paper's objective at 0.3.0's default (6,000 steps)",
    ),
    "demo": (
        DEMO,
        "distok's objective, the demo's run (300 steps, n = 32; the recipe's p_match and learned weighting)",
    ),
    "demo-0.5": ([*DEMO, "train.reweight=false"], "the demo's run as 0.5.0 trained it (no learned weighting)"),
    "demo-250": (
        SHORT,
        "distok's objective, 250 steps, n = 32 (the demo's run before its step count was set by its time budget)",
    ),
    "default": ([], "distok's objective, the recipe's default (1,500 steps, n = 32, learned weighting at lr 0.01)"),
    "default-0.5": (["train.reweight=false"], "the recipe's default as 0.5.0 trained it (no learned weighting)"),
    "no-residual": ([*SHORT, "train.residual=false"], "demo-250 without the residual decoder"),
    "one-style": ([*SHORT, "train.styles=[a photo of a]"], "demo-250 trained in the training style only"),
    "latent64": ([*SHORT, "train.latent_dim=64"], "demo-250 with ω = 64"),
    "n8": (["train.n=8", "train.steps=800"], "n = 8 at about the demo's wall time"),
    "n64": (["train.n=64", "train.steps=140"], "n = 64 at about the demo's wall time"),
    "cosine": ([*SHORT, "train.lr_schedule=cosine"], "demo-250 with a cosine learning-rate schedule"),
    "lr3e-3": ([*SHORT, "train.lr=0.003"], "demo-250 at lr 0.003"),
    "match-only": ([*SHORT, "train.p_match=1"], "demo-250 with matching only (no fusion, no consistency)"),
    "mixed": (
        [*SHORT, "train.p_match=0.75"],
        "demo-250 with matching on 75 % of the steps, fusion and consistency on the rest",
    ),
    "match-half": ([*SHORT, "train.p_match=0.5"], "demo-250 with matching on half the steps"),
    "match-0.9": ([*SHORT, "train.p_match=0.9"], "demo-250 with matching on 90 % of the steps"),
    "long": (["train.n=32", "train.steps=1500"], "distok's objective, 1,500 steps"),
    "first-T": (
        [*SHORT, "train.match_calibration=first"],
        "demo-250 with one matching T for every style (the first style's)",
    ),
    "one-style-match-only": ([*SHORT, "train.styles=[a photo of a]", "train.p_match=1"], "one style, matching only"),
    "three-styles": (
        [*SHORT, "train.styles=[a photo of a, a painting of a, a sketch of a]"],
        "demo-250 in three styles",
    ),
    "wide": ([*SHORT, WIDE_SET], "demo-250 in 40 training styles (breadth instead of length)"),
    "wide-h1536": ([*SHORT, WIDE_SET, "train.hidden=1536"], "wide, with E_dis/D_tok twice as wide"),
    "wide-n64": (["train.n=64", "train.steps=140", WIDE_SET], "wide, 64 samples a step at about the same wall time"),
    "reweight": ([*SHORT, "train.reweight=true"], "demo-250 with a learned weighting of the input mix (w ∝ p^α e^b)"),
    "reweight-lr10": ([*SHORT, "train.reweight=true", "train.reweight_lr=0.01"], "reweight, the weighting at lr 0.01"),
    "demo-reweight": ([*DEMO, "train.reweight=true"], "the demo's run with the learned weighting (lr as the MLPs')"),
    "demo-reweight-lr10": (
        [*DEMO, "train.reweight=true", "train.reweight_lr=0.01"],
        "the demo's run with the learned weighting at lr 0.01",
    ),
    "default-reweight-lr3": (
        ["train.reweight=true", "train.reweight_lr=0.003"],
        "the recipe's default with the learned weighting at lr 0.003",
    ),
    "demo-reweight-lr3": (
        [*DEMO, "train.reweight=true", "train.reweight_lr=0.003"],
        "the demo's run with the learned weighting at lr 0.003",
    ),
    "default-reweight-lr10": (
        ["train.reweight=true", "train.reweight_lr=0.01"],
        "the recipe's default with the learned weighting at lr 0.01",
    ),
    "default-reweight": (["train.reweight=true"], "the recipe's default (1,500 steps) with reweight"),
    "default-arity": (
        ["train.reweight_arity=true"],
        "the recipe's default with one weighting exponent per arity (2, 3, 4+ classes)",
    ),
    "arity-up": (
        ["train.reweight_arity=true", "train.match_arity=[1, 1, 2, 3]"],
        "default-arity, matching drawing 3- and 4-class inputs more often (weights 1:1:2:3)",
    ),
    "arity-5": (
        ["train.reweight_arity=true", "train.match_arity=[1, 1, 1, 1, 1]"],
        "default-arity, matching drawing 1 to 5 classes",
    ),
    "demo-arity": ([*DEMO, "train.reweight_arity=true"], "the demo's run with one weighting exponent per arity"),
    "default-refined": (
        ["train.steps=1260", "train.refined_every=25"],
        "the recipe's default with refined concepts in the pool (8 every 25 steps, 20 refinement steps, L_cst on 25 % of the steps), 1,260 steps: the default's wall time",
    ),
    "default-refined-p10": (
        ["train.steps=1260", "train.refined_every=25", "train.p_refined=0.1"],
        "default-refined with L_cst on refined concepts on 10 % of the steps",
    ),
    "default-refined-p50": (
        ["train.steps=1260", "train.refined_every=25", "train.p_refined=0.5"],
        "default-refined with L_cst on refined concepts on half the steps",
    ),
    "reweight-wide-h1536": (
        [*SHORT, "train.reweight=true", WIDE_SET, "train.hidden=1536"],
        "reweight + wide + hidden 1536",
    ),
}
ARITIES = ("1", "2", "3", "4+")


def sh(args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def one(work: Path, arm: str, seed: int, dists: Path, styles: Path, refine: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = work / f"{arm}-s{seed}"
    sets = sum((["--set", s] for s in ARMS[arm][0]), [])
    t0 = time.perf_counter()
    sh(
        [
            sys.executable,
            "-m",
            "distok_cli",
            "train",
            "-r",
            "minilm-animals",
            "-o",
            str(run),
            "--seed",
            str(seed),
            "-q",
            *sets,
        ],
        env,
    )
    took = time.perf_counter() - t0
    ev = [
        sys.executable,
        "-m",
        "distok_cli",
        "eval",
        str(run),
        "--json",
        "-q",
        "--distributions",
        str(dists),
        "--styles",
        str(styles),
        "--free-token",
        "-o",
        str(run / "eval"),
    ]
    if refine and arm not in ("paper", "paper-6000"):
        ev += ["--refine", str(refine)]
    rep = json.loads(sh(ev, env))
    h = rep["held_out"]
    steps = json.loads((run / "log.jsonl").read_text().splitlines()[-1])["step"]
    print(
        f"{arm:12s} seed {seed}: training style KL {rep['kl']:.3f} (raw {rep['baselines']['raw_mix']['kl']:.3f}); "
        f"other styles {h['distok']['kl']:.3f} (raw {h['raw_mix']['kl']:.3f}, ratio {h['distok']['kl'] / h['raw_mix']['kl']:.3f})"
        + (f"; refined {h['refined']['kl']:.3f}" if "refined" in h else "")
        + f"; {steps} steps in {took:.0f} s",
        flush=True,
    )
    return {"arm": arm, "seed": seed, "train_seconds": round(took, 1), "steps": steps, "eval": rep}


def stat(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def ratio(part: dict, base: dict) -> float:
    return part["kl"] / base["kl"]


def table(runs: list[dict], arms: list[str]) -> list[str]:
    lines = [
        "| arm | seeds | train s | steps | training style KL | ratio | other styles KL | ratio | arity 1 / 2 / 3 / 4+ (other styles) | top-1 | judge: other styles ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def judged(ev: list[dict], arm: str) -> str:  # the second readout (distok eval's judge), held-out styles
        if not all("judge" in e for e in ev):
            return "—"
        return stat([e["judge"]["held_out"][arm]["kl"] / e["judge"]["held_out"]["raw_mix"]["kl"] for e in ev])

    for arm in arms:
        rs = [r for r in runs if r["arm"] == arm]
        if not rs:
            continue
        ev = [r["eval"] for r in rs]
        by = " / ".join(
            stat([e["held_out"]["distok"]["by_arity"][a] for e in ev])
            if ev[0]["held_out"]["distok"]["by_arity"][a] is not None
            else "—"
            for a in ARITIES
        )
        lines.append(
            f"| {arm} | {len(rs)} | {statistics.mean(r['train_seconds'] for r in rs):.0f} | {rs[0]['steps']} | "
            f"{stat([e['kl'] for e in ev])} | {stat([ratio(e, e['baselines']['raw_mix']) for e in ev])} | "
            f"{stat([e['held_out']['distok']['kl'] for e in ev])} | {stat([ratio(e['held_out']['distok'], e['held_out']['raw_mix']) for e in ev])} | "
            f"{by} | {stat([e['held_out']['distok']['top1'] for e in ev])} | {judged(ev, 'distok')} |"
        )
        if "refined" in ev[0]["held_out"]:
            byr = " / ".join(stat([e["held_out"]["refined"]["by_arity"][a] for e in ev]) for a in ARITIES)
            lines.append(
                f"| {arm} + refine {ev[0]['refine']['steps']} ({statistics.mean(e['refine']['seconds_per_token'] for e in ev):.3f} s/token) | {len(rs)} | | | "
                f"{stat([e['baselines']['refined']['kl'] for e in ev])} | {stat([ratio(e['baselines']['refined'], e['baselines']['raw_mix']) for e in ev])} | "
                f"{stat([e['held_out']['refined']['kl'] for e in ev])} | {stat([ratio(e['held_out']['refined'], e['held_out']['raw_mix']) for e in ev])} | "
                f"{byr} | {stat([e['held_out']['refined']['top1'] for e in ev])} | {judged(ev, 'refined')} |"
            )
    e = runs[0]["eval"]  # the baselines have no model: the same in every run
    raw, rh = e["baselines"]["raw_mix"], e["held_out"]["raw_mix"]
    one_class = [(s, v["raw_mix"]["by_arity"]["1"]["kl"]) for s, v in e["by_style"].items()]
    by = " / ".join(f"{rh['by_arity'][a]:.3f}" for a in ARITIES if rh["by_arity"][a] is not None)
    lines.append(
        f"| raw mix (no model) | — | — | — | {raw['kl']:.3f} | 1 | {rh['kl']:.3f} | 1 | {by} | {rh['top1']:.3f} | 1 |"
    )
    if "free_token" in e["baselines"]:
        ft, fh = e["baselines"]["free_token"], e["held_out"]["free_token"]
        lines.append(
            f"| free token (optimised in the training style) | — | — | — | {ft['kl']:.3f} | {ft['kl'] / raw['kl']:.3f} | "
            f"{fh['kl']:.3f} | {fh['kl'] / rh['kl']:.3f} | | {fh['top1']:.3f} | {judged([e], 'free_token')} |"
        )
    lines += [
        "",
        "One-class inputs (arity 1), KL per style: the raw mix is the class's own embedding t_c.",
        "",
        "| arm | " + " | ".join(s for s, _ in one_class) + " | training style |",
        "|---|" + "---|" * (len(one_class) + 1),
    ]
    for arm in arms:
        rs = [r["eval"] for r in runs if r["arm"] == arm]
        if rs:
            lines.append(
                f"| {arm} | "
                + " | ".join(
                    f"{statistics.mean(x['by_style'][s]['distok']['by_arity']['1']['kl'] for x in rs):.3f}"
                    for s, _ in one_class
                )
                + f" | {statistics.mean(x['by_arity']['1']['kl'] for x in rs):.3f} |"
            )
    lines.append(
        "| raw mix (t_c) | " + " | ".join(f"{v:.3f}" for _, v in one_class) + f" | {raw['by_arity']['1']['kl']:.3f} |"
    )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("tuning", "test"), required=True)
    ap.add_argument("--arms", nargs="+", default=["paper", "demo", "default"], choices=list(ARMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--refine", type=int, default=30, help="also score the tokens after N refinement steps (0: off)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--work", type=Path, help="keep the runs in this folder (default: a temporary one)")
    args = ap.parse_args()
    from distok_cli.files import recipes
    from distok_cli.method import evaluation

    which = "tuning" if args.split == "tuning" else "held_out"
    with contextlib.nullcontext(str(args.work)) if args.work else tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dists, styles = work / "distributions.json", work / "styles.json"
        dists.write_text(json.dumps(evaluation.protocol_set(recipes.ANIMALS_60, args.split)))
        styles.write_text(json.dumps(evaluation.default_styles(which)))
        plan = [(a, s) for s in args.seeds for a in args.arms]
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(lambda p: one(work, *p, dists, styles, args.refine), plan))
    head = {
        "command": "python bench/fidelity.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core CPU, one torch thread per run, {args.jobs} runs at a time",
        "split": args.split,
        "styles": evaluation.default_styles(which),
        "arms": {a: ARMS[a] for a in args.arms},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"fidelity-minilm-{args.split}"
    (args.out / f"{stem}.json").write_text(json.dumps({**head, "runs": runs}, indent=1, sort_keys=True) + "\n")
    e = runs[0]["eval"]
    md = [
        f"# Method fidelity, minilm-animals, {args.split} split",
        "",
        f"`{head['command']}` on {head['date']} ({head['machine']}). 40 distributions of 1–4 classes "
        f"(seed {evaluation.TUNING_SEED if args.split == 'tuning' else evaluation.TEST_SEED}); text-side estimator, T calibrated per style. "
        f"'other styles' is the mean over {', '.join(repr(s) for s in head['styles'])}; 'ratio' is KL ÷ the raw mix's KL in the same "
        "styles (lower is better). Mean ± sample std over seeds.",
        "",
        *table(runs, args.arms),
        "",
        "Arms: "
        + "; ".join(f"`{a}`: {ARMS[a][1]} (`{' '.join(ARMS[a][0]) or 'recipe defaults'}`)" for a in args.arms)
        + ".",
        "",
        f"Raw mix by style: training {e['baselines']['raw_mix']['kl']:.3f}; "
        + ", ".join(f"{s} {v['raw_mix']['kl']:.3f}" for s, v in e["by_style"].items())
        + ".",
        "",
    ]
    (args.out / f"{stem}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()

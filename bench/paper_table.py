"""The paper's tables from `distok eval --json` lines, beside the paper's numbers (bench/reproduce_paper.sh).

    python3 bench/paper_table.py pairs RUN              # 30 class pairs of RUN's classes, 50/50 (JSON, stdout)
    python3 bench/paper_table.py time RUN               # ms per concept: one encoder forward (JSON, stdout)
    python3 bench/paper_table.py table OUT              # table.md from OUT/eval-*.json (stdout)
    python3 bench/paper_table.py FULL NO_CST [DISTOK]   # the ablation table alone (as before)

Table 1 (VQAScore, PickScore, ImageReward; the paper's numbers for DisTok, BASS and CreTok) comes from the
``metrics`` of the evals run with ``--metric`` (the paper's objective and distok's, on the 30 distributions
and on 30 class pairs), the ablation table (KL, full and without L_cst) from the BLIP-VQA evals. The pairs
are ours: the paper's CangJie pairs are unpublished, as its class list is.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

PAPER = {"full": 0.0602, "no-cst": 0.0732}
#: Table 1 of the paper: (VQAScore, PickScore, ImageReward) per method and task.
TABLE1 = {
    ("DisTok", "pairs"): (0.840, 22.33, 1.168),
    ("DisTok", "distributions"): (0.734, 21.23, 0.661),
    ("BASS", "pairs"): (0.667, 21.67, 0.387),
    ("CreTok", "pairs"): (0.695, 21.97, 1.018),
}
METRICS = ("vqascore", "pickscore", "imagereward", "clipscore")
N_PAIRS = 30


def row(name: str, paper: float | None, s: dict) -> str:
    b = s["baselines"]["raw_mix"]
    ar = " / ".join(
        "—" if s["by_arity"][a]["kl"] is None else f"{s['by_arity'][a]['kl']:.4f}" for a in ("2", "3", "4+")
    )
    return (
        f"| {name} | {'—' if paper is None else f'{paper:.4f}'} | {s['kl']:.4f} | {ar} | {s['top1']:.3f} | "
        f"{b['kl']:.4f} |"
    )


def main(full_path: str, nocst_path: str, distok_path: str | None = None) -> str:
    """The ablation table: KL(input ‖ BLIP's estimate), full and without L_cst, beside the paper's."""
    full = json.loads(open(full_path).read())
    nocst = json.loads(open(nocst_path).read())
    lines = [
        f"Estimator `{full['estimator']}`, T = {full['temperature']:.4g} ({full['temperature_rule']}), "
        f"{full['images']} image(s) per distribution, set `{full['eval_set']}` (n = {full['n']}).",
        "",
        "| configuration | paper KL ↓ | our KL ↓ | our KL by arity 2 / 3 / 4+ | top-1 ↑ | raw-mix KL (no model) |",
        "|---|---|---|---|---|---|",
        row("w/o Consistency Enforcement", PAPER["no-cst"], nocst),
        row("Full DisTok", PAPER["full"], full),
    ]
    if distok_path:
        lines.append(row("distok's objective (ours)", None, json.loads(open(distok_path).read())))
    return "\n".join(lines) + "\n"


def pairs(run: str) -> list[dict[str, float]]:
    """:data:`N_PAIRS` distinct class pairs of the run's classes (all of them when there are fewer), 50/50,
    drawn with a fixed seed so that every run of the kit scores the same pairs."""
    import numpy as np

    from distok_cli.files import checkpoint

    classes = checkpoint.load(run).classes
    every = [(a, b) for i, a in enumerate(classes) for b in classes[i + 1 :]]
    pick = np.random.default_rng(0).permutation(len(every))[:N_PAIRS]
    return [{every[i][0]: 0.5, every[i][1]: 0.5} for i in sorted(pick)]


def time_per_concept(run: str, n: int = 200) -> dict[str, float]:
    """Milliseconds per concept of one encoder forward (``encode --refine 0``: numpy, this machine's CPU)."""
    from distok_cli import load

    model = load(run)
    dists = [{c: 0.5, model.classes[(i + 1) % len(model.classes)]: 0.5} for i, c in enumerate(model.classes)]
    model.encode(dists[0], refine=0)
    start = time.perf_counter()
    for i in range(n):
        model.encode(dists[i % len(dists)], refine=0)
    return {"ms_per_concept": (time.perf_counter() - start) * 1000 / n, "n": n}


def _metric(ev: dict | None, arm: str, name: str) -> str:
    if ev is None or "metrics" not in ev:
        return "—"
    value = ev["metrics"]["arms"][arm].get(name)
    return "—" if value is None else f"{value:.3f}"


def table1(out: Path) -> list[str]:
    def ev(name: str) -> dict | None:
        p = out / f"eval-{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    runs = {("full", "distributions"): ev("full"), ("distok", "distributions"): ev("distok")}
    runs |= {("full", "pairs"): ev("pairs-full"), ("distok", "pairs"): ev("pairs-distok")}
    some = next((r for r in runs.values() if r and "metrics" in r), None)
    ran = [m for m in METRICS if some and m in some["metrics"]["arms"]["distok"]]
    lines = [
        "## Table 1: image metrics (paper / ours)",
        "",
        f"Renders per token: {some['metrics']['images'] if some else '—'}, in `{some['metrics']['prompt'] if some else '—'}`,"
        f" scored against `{some['metrics']['text'] if some else '—'}`. Metrics run: {', '.join(ran) or 'none'}"
        " (a metric not run shows —; VQAScore and ImageReward need their own packages, docs/guide.md).",
        "",
        "| method | task | VQAScore ↑ | PickScore ↑ | ImageReward ↑ | CLIPScore ↑ (ours only) |",
        "|---|---|---|---|---|---|",
    ]
    for task in ("pairs", "distributions"):
        paper = TABLE1.get(("DisTok", task))
        for arm, label in (("full", "DisTok, the paper's objective"), ("distok", "distok's objective")):
            r = runs[(arm, task)]
            cells = [
                (f"{paper[i]:g} / " if paper and arm == "full" else "— / ") + _metric(r, "distok", m)
                for i, m in enumerate(METRICS[:3])
            ]
            lines.append(f"| {label} | {task} | " + " | ".join(cells) + f" | {_metric(r, 'distok', 'clipscore')} |")
        r = runs[("full", task)]
        for arm, label in (
            ("raw_mix", "raw mix Σ p_i t_i (no model)"),
            ("plain", "plain prompt (the classes named)"),
            ("weighted", "weighted prompt (the classes with their shares)"),
        ):
            lines.append(
                f"| {label} | {task} | "
                + " | ".join(f"— / {_metric(r, arm, m)}" for m in METRICS[:3])
                + f" | {_metric(r, arm, 'clipscore')} |"
            )
        for other in ("BASS", "CreTok"):
            if (other, task) in TABLE1:
                p = TABLE1[(other, task)]
                lines.append(
                    f"| {other} (the paper's figures) | {task} | " + " | ".join(f"{x:g} / —" for x in p) + " | — |"
                )
    return lines


def table(out: str) -> str:
    out_dir = Path(out)
    lines = table1(out_dir) + ["", "## The ablation: KL(input ‖ BLIP-VQA's estimate) ↓", ""]
    lines.append(
        main(
            str(out_dir / "eval-full.json"),
            str(out_dir / "eval-no-cst.json"),
            str(out_dir / "eval-distok.json") if (out_dir / "eval-distok.json").is_file() else None,
        ).rstrip("\n")
    )
    timing = out_dir / "time.json"
    if timing.is_file():
        t = json.loads(timing.read_text())
        lines += [
            "",
            f"Time per concept: {t['ms_per_concept']:.3f} ms, one forward of the encoder (`encode --refine 0`, numpy, "
            f"mean of {t['n']}, this machine's CPU); the optimisation-based methods the paper compares with take "
            "minutes per concept.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if sys.argv[1] == "pairs":
        print(json.dumps(pairs(sys.argv[2])))
    elif sys.argv[1] == "time":
        print(json.dumps(time_per_concept(sys.argv[2])))
    elif sys.argv[1] == "table":
        sys.stdout.write(table(sys.argv[2]))
    else:
        sys.stdout.write(main(*sys.argv[1:4]))

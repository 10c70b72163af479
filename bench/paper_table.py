"""The paper's ablation table (KL between the input distribution and BLIP's, ↓) from two `distok eval --json`
lines (the paper's objective, full and without L_cst), and distok's objective as a third row when given."""

from __future__ import annotations

import json
import sys

PAPER = {"full": 0.0602, "no-cst": 0.0732}


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


if __name__ == "__main__":
    sys.stdout.write(main(*sys.argv[1:4]))

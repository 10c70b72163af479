"""What one `distok encode` costs, as a user runs it: a fresh process, model load included.

For each refinement setting, the wall time of `distok encode SPEC -m RUN -o FILE` (``--refine 0``: the
encoder alone, numpy; ``auto``: the default, 30 steps against the text side; and the other step counts
given), median of ``--repeat`` runs, one after another, on this machine's cores.

    python bench/encode_cost.py RUN --refine 0 10 20 auto --repeat 5    # writes bench/results/encode-cost.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = "pig:0.55,sheep:0.25,snake:0.20"


def one(run: Path, refine: str, out: Path) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "distok_cli",
            "encode",
            SPEC,
            "-m",
            str(run),
            "-o",
            str(out),
            "--refine",
            refine,
            "--overwrite",
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--refine", nargs="+", default=["0", "10", "20", "auto"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for refine in args.refine:
            one(args.run, refine, Path(tmp) / "warm.distok")  # the first run warms the file cache
            times = [one(args.run, refine, Path(tmp) / "t.distok") for _ in range(args.repeat)]
            rows[refine] = {
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "runs": [round(t, 3) for t in times],
            }
            print(
                f"--refine {refine}: median {rows[refine]['median_s']:.2f} s (min {rows[refine]['min_s']:.2f})",
                flush=True,
            )
    head = {
        "command": "python bench/encode_cost.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core CPU",
        "spec": SPEC,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "encode-cost.json").write_text(json.dumps({**head, "rows": rows}, indent=1, sort_keys=True) + "\n")
    md = [
        f"# One `distok encode`, a fresh process, model load included ({head['date']}, {head['machine']})",
        "",
        f"`{head['command']}`: `distok encode {SPEC} -m RUN -o FILE --refine N`, median of {args.repeat} runs.",
        "",
        "| --refine | median s | min s |",
        "|---|---|---|",
    ]
    md += [f"| {k} | {v['median_s']:.2f} | {v['min_s']:.2f} |" for k, v in rows.items()]
    (args.out / "encode-cost.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""How far a re-render can drift: the same images rendered on the tiny Kandinsky twin (CPU) with another
batch composition, another thread count, or another torch build.

    python bench/rerender_tolerance.py render DIR                 # writes DIR/*.npy (uint8 pixels) + DIR/info.json
    OMP_NUM_THREADS=1 python bench/rerender_tolerance.py render DIR1
    python bench/rerender_tolerance.py compare DIR DIR1 [...]     # max |difference| and share of values that differ

Each DIR holds four images of one token: "a photo of a <>" rendered alone, and the same prompt and seed as
the second of three prompts in one batch. ``compare`` reports, image by image, against the first DIR; the
first line of its output also compares alone vs in-a-batch within the first DIR (the batch effect that
``render --from`` replays away). Results: ``bench/results/rerender-tolerance.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def render(out: Path) -> None:
    import torch

    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.registry import make_renderer
    from distok_cli.files import recipes

    cfg = recipes.load("tiny")
    r = make_renderer(cfg.render, "cpu", "float32")
    s = Settings.from_config(cfg.render)
    v = torch.as_tensor(np.random.default_rng(0).standard_normal((1, r.text.dim)).astype(np.float32) * 0.02)
    alone = r.render(v, ["a photo of a <>"], [7], s)
    batch = r.render(v.repeat(3, 1), ["a sketch of a <>", "a photo of a <>", "a toy of a <>"], [7, 7, 7], s)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "alone.npy", np.asarray(alone[0], np.uint8), allow_pickle=False)
    for i, img in enumerate(batch):
        np.save(out / f"batch{i}.npy", np.asarray(img, np.uint8), allow_pickle=False)
    (out / "info.json").write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}) + "\n")


def diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"max": int(d.max()), "share_differing": float((d > 0).mean())}


def compare(dirs: list[Path]) -> None:
    first = dirs[0]
    info = json.loads((first / "info.json").read_text())
    print(
        f"{first} (torch {info['torch']}, {info['threads']} threads): alone vs second of a batch of three:",
        diff(np.load(first / "alone.npy"), np.load(first / "batch1.npy")),
    )
    for other in dirs[1:]:
        oi = json.loads((other / "info.json").read_text())
        for name in ("alone", "batch0", "batch1", "batch2"):
            print(
                f"{other} (torch {oi['torch']}, {oi['threads']} threads) vs first, {name}:",
                diff(np.load(first / f"{name}.npy"), np.load(other / f"{name}.npy")),
            )


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "render":
        render(Path(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "compare":
        compare([Path(p) for p in sys.argv[2:]])
    else:
        raise SystemExit(__doc__)

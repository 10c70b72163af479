"""``distok eval``: the paper's distribution-consistency metric, next to baselines that cannot flatter it.

For each weighted class distribution p of an evaluation set: token = D_tok(E_dis(Σ p_i t_i)); q = the
estimator's class distribution of that token (averaged over ``images`` renders for the rendering
estimators). Reported, overall and by arity (1, 2, 3, 4+ classes):

* ``kl`` = KL(p ‖ q), the paper's metric (0.0602 full, 0.0732 without L_cst on Kandinsky + BLIP), split
  exactly into ``kl_outside`` = −log q(supp p) (mass the estimate puts outside the input's classes) and
  ``kl_inside`` = KL(p ‖ q restricted to supp p and renormalised) (mis-weighting inside them);
* ``js``, ``top1`` (argmax p = argmax q) and ``top_share_error`` = |q(c*) − p(c*)| for the input's top
  class c*;
* the same for ``baselines.raw_mix``: the token Σ p_i t_i itself, no model (what DisTok must beat), and
  with ``free_token=True`` for ``baselines.free_token``: one token per distribution optimised against the
  (differentiable, text-side) estimator, the floor the estimator allows.

**The temperature rule** (fixed before any result was looked at): the estimator's scores become
probabilities through ``softmax(score / T)``. Unless the recipe sets ``eval.temperature``, T is
*calibrated on the pure class tokens*: the largest T on a log grid (10⁻⁴…10², 2,401 points) at which
the K class tokens t_c, read by the same estimator in the same prompt, give their own class a mean
probability of at least ``eval.calibrate_to`` (0.9). It depends on the token space and the estimator
only, never on the model being evaluated, so every model and baseline is read at the same T.

The set is ``recipes/eval/<classset>-v1.json`` (the paper-style 30: 2–4 classes) when the run's classes
are that class set, else generated from the run's classes by :func:`make_eval_set`, or any JSON list of
``{class: weight}`` objects (``--distributions``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli.errors import BadInput
from distok_cli.files import distributions as dists
from distok_cli.progress import Progress

EVAL_VERSION = "v1"
ARITIES = ("1", "2", "3", "4+")
#: The temperature grid of the calibration rule.
T_GRID = np.logspace(-4, 2, 2401)
#: Free-token baseline: Adam steps and learning rate (per distribution, batched).
FREE_TOKEN_STEPS, FREE_TOKEN_LR = 100, 0.01
#: Largest evaluation file and set accepted by ``--distributions``.
MAX_SET_BYTES, MAX_SET_ITEMS = 4 << 20, 10_000



def make_eval_set(classes: list[str], n: int = 30, seed: int = 0) -> list[dict[str, float]]:
    """Algorithm v1: per item, k ∈ {2, 3, 4} classes without replacement, Dirichlet(1) weights sorted
    descending, rounded to 2 decimals with at least 0.05 each, the rounding error given to the largest."""
    if len(classes) < 4:
        raise BadInput("an evaluation set needs at least 4 classes")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 5))
        names = [classes[i] for i in rng.choice(len(classes), size=k, replace=False)]
        w = np.sort(rng.dirichlet(np.ones(k)))[::-1]
        w = np.maximum(np.round(w, 2), 0.05)
        w[0] += 1.0 - w.sum()
        out.append({c: round(float(x), 2) for c, x in zip(names, w)})
    return out


def eval_set_for(classes: list[str]) -> tuple[str, list[dict[str, float]]]:
    from distok_cli.files.recipes import CLASS_SETS, recipe_dirs

    for name, members in CLASS_SETS.items():
        if list(members) == list(classes):
            for d in recipe_dirs():
                p = d / "eval" / f"{name}-{EVAL_VERSION}.json"
                if p.is_file():
                    data = json.loads(p.read_text())
                    return f"{name}-{EVAL_VERSION}", data["distributions"]
    return f"generated-{EVAL_VERSION}-seed0", make_eval_set(classes)


def read_eval_set(path: Path, classes: list[str]) -> tuple[str, list[dict[str, float]]]:
    """A JSON list of ``{class: weight}`` objects (or ``{"distributions": [...]}``), checked against ``classes``."""
    try:
        if not path.is_file():
            raise BadInput(f"{path}: no such file")
        if path.stat().st_size > MAX_SET_BYTES:
            raise BadInput(f"{path}: larger than {MAX_SET_BYTES >> 20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadInput(f"{path}: not a JSON evaluation set ({type(exc).__name__})") from None
    if isinstance(data, dict) and "distributions" in data:
        data = data["distributions"]
    if not isinstance(data, list) or not data:
        raise BadInput(f"{path}: expected a non-empty JSON list of {{class: weight}} objects")
    if len(data) > MAX_SET_ITEMS:
        raise BadInput(f"{path}: more than {MAX_SET_ITEMS} distributions")
    known = set(classes)
    items = []
    for i, d in enumerate(data):
        if not isinstance(d, dict) or not d:
            raise BadInput(f"{path}: item {i} is not a non-empty {{class: weight}} object")
        for c, w in d.items():
            if c not in known:
                raise BadInput(f"{path}: item {i}: unknown class {c!r}{dists.suggest(c, classes)}")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise BadInput(f"{path}: item {i}: weight of {c!r} must be a finite number ≥ 0")
        if not sum(d.values()) > 0:
            raise BadInput(f"{path}: item {i}: weights sum to zero")
        items.append({c: float(w) for c, w in d.items()})
    return f"file:{path.name}", items


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a number", name, 0)


def normalise(p: dict[str, float]) -> dict[str, float]:
    s = sum(p.values())
    return {c: v / s for c, v in p.items() if v > 0}


def arity(p: dict[str, float]) -> str:
    k = sum(1 for v in p.values() if v > 0)
    return str(k) if k < 4 else "4+"


def probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / T)`` per image, averaged over images: [N, I, K] → [N, K] (float64, rows sum to 1)."""
    x = np.asarray(logits, np.float64) / temperature
    x = np.exp(x - x.max(-1, keepdims=True))
    q = (x / x.sum(-1, keepdims=True)).mean(1)
    return q / q.sum(-1, keepdims=True)


def calibrate_temperature(pure_logits: np.ndarray, target: float) -> float:
    """The rule: the largest T on :data:`T_GRID` at which the class tokens ([K, I, K], row c = t_c) give
    their own class a mean probability ≥ ``target``; the T of the highest mean if none reaches it."""
    k = pure_logits.shape[0]
    own = np.array([probabilities(pure_logits, t)[np.arange(k), np.arange(k)].mean() for t in T_GRID])
    ok = np.nonzero(own >= target)[0]
    return float(T_GRID[ok[-1]] if len(ok) else T_GRID[int(own.argmax())])


def kl_parts(p: dict[str, float], q: dict[str, float]) -> tuple[float, float]:
    """(outside, inside) with outside + inside = KL(p ‖ q) (q clipped at ``dists.EPS`` as in ``dists.kl``)."""
    qc = {c: max(q.get(c, 0.0), dists.EPS) for c in p}
    q_in = sum(qc.values())
    inside = sum(v * math.log(v * q_in / qc[c]) for c, v in p.items() if v > 0)
    return -math.log(q_in), inside


def score(inputs: list[dict[str, float]], q: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Per-item figures and their means, overall and by arity."""
    rows = []
    for p, row in zip(inputs, q):
        est = {c: float(x) for c, x in zip(classes, row)}
        top_c, top_p = dists.top(p, 1)[0]
        outside, inside = kl_parts(p, est)
        rows.append({
            "input": p, "estimate": est, "arity": arity(p), "kl": dists.kl(p, est), "js": dists.js(p, est),
            "kl_outside": outside, "kl_inside": inside, "top1": top_c == dists.top(est, 1)[0][0],
            "top_share_error": abs(est[top_c] - top_p),
        })
    out = summarise(rows)
    out["by_arity"] = {a: summarise([r for r in rows if r["arity"] == a]) for a in ARITIES}
    out["items"] = rows
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("kl", "js", "kl_outside", "kl_inside", "top1", "top_share_error")
    if not rows:
        return {"n": 0, **dict.fromkeys(keys)}
    return {"n": len(rows), **{k: float(np.mean([float(r[k]) for r in rows])) for k in keys}}


def _logits(estimator: Any, vectors: np.ndarray, first_seed: int, images: int, batch: int,
            progress: Progress | None) -> np.ndarray:
    """Scores [N, I, K]; token i's image j has seed ``first_seed + i·images + j``."""
    import torch

    parts = []
    for i in range(0, len(vectors), batch):
        chunk = vectors[i : i + batch]
        seeds = [[first_seed + (i + r) * images + j for j in range(images)] for r in range(len(chunk))]
        parts.append(estimator.logits(torch.as_tensor(chunk), seeds).double().numpy())
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(parts)


def raw_mix(ckpt: Any, p: dict[str, float]) -> np.ndarray:
    """The no-model baseline: Σ p_i t_i, summed exactly as ``encode`` sums its input."""
    from distok_cli.method.generate import weighted_sum

    index = {c: i for i, c in enumerate(ckpt.classes)}
    return weighted_sum([(c, w, ckpt.class_embeddings[index[c]]) for c, w in p.items()])


def free_tokens(estimator: Any, inputs: list[dict[str, float]], classes: list[str], start: np.ndarray,
                temperature: float, progress: Progress | None = None) -> np.ndarray:
    """One token per distribution, optimised (Adam, from the raw mix) to minimise KL(p ‖ estimate)."""
    import torch

    if not hasattr(estimator, "cosines"):
        raise BadInput("the free-token baseline needs the text estimator (its scores are differentiable)")
    target = torch.tensor([[p.get(c, 0.0) for c in classes] for p in inputs], dtype=torch.float32)
    dev = estimator.class_emb.device
    v = torch.nn.Parameter(torch.as_tensor(start, dtype=torch.float32, device=dev).clone())
    opt = torch.optim.Adam([v], lr=FREE_TOKEN_LR)
    target = target.to(dev)
    for _ in range(FREE_TOKEN_STEPS):
        logq = (estimator.cosines(v).float() / temperature).log_softmax(-1)
        loss = (target * (target.clamp(min=1e-12).log() - logq)).sum(-1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(1)
    return v.detach().cpu().numpy()


def work(n_items: int, n_classes: int, free_token: bool, calibrate: bool = True) -> int:
    """Units of progress :func:`evaluate` reports (for a progress bar's total)."""
    return (n_classes if calibrate else 0) + 2 * n_items + (FREE_TOKEN_STEPS + n_items if free_token else 0)


def evaluate(
    ckpt: Any, estimator: Any, items: list[dict[str, float]] | None = None, set_name: str | None = None,
    temperature: float | None = None, calibrate_to: float = 0.9, images: int = 1, free_token: bool = False,
    progress: Progress | None = None, batch: int = 8,
) -> dict[str, Any]:
    """Evaluate a checkpoint and the baselines with one estimator (see the module docstring).

    Args:
        ckpt: a :class:`~distok_cli.files.checkpoint.Checkpoint`.
        estimator: has ``name`` and ``logits(vectors [N, d], seeds [[int]]) -> [N, I, K]``.
        items: the distributions (default: the run's class set's versioned set).
        temperature: a fixed T; ``None`` calibrates it by the rule above.
        images: renders per token (the rendering estimators average their distributions).
        free_token: also run the optimised-token floor (text estimator only; slower).
        progress: called with the number of work units done (:func:`work` gives the total).
    """
    from distok_cli.method.generate import encode

    if items is None:
        set_name, items = eval_set_for(ckpt.classes)
    classes = ckpt.classes
    inputs = [normalise(p) for p in items]
    T = ckpt.class_embeddings.astype(np.float64)
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True)
    rule = "fixed (eval.temperature)"
    if temperature is None:
        pure = _logits(estimator, ckpt.class_embeddings.astype(np.float32), 1_000_000, images, batch, progress)
        temperature = calibrate_temperature(pure, calibrate_to)
        rule = f"calibrated: class tokens give their own class a mean probability of {calibrate_to:g}"
    vectors = np.stack([encode(ckpt, p).vector for p in inputs])
    report = score(inputs, probabilities(_logits(estimator, vectors, 0, images, batch, progress), temperature), classes)
    for r, v in zip(report["items"], vectors.astype(np.float64)):
        cos = Tn @ (v / np.linalg.norm(v))
        r["nearest_class"], r["nearest_cosine"] = classes[int(cos.argmax())], float(cos.max())
    report["nearest_cosine"] = float(np.mean([r["nearest_cosine"] for r in report["items"]]))
    mixes = np.stack([raw_mix(ckpt, p) for p in inputs])
    baselines = {"raw_mix": score(inputs, probabilities(_logits(estimator, mixes, 0, images, batch, progress), temperature), classes)}
    if free_token:
        free = free_tokens(estimator, inputs, classes, mixes, temperature, progress)
        baselines["free_token"] = score(inputs, probabilities(_logits(estimator, free, 0, images, batch, progress), temperature), classes)
    head = {
        "eval_set": set_name or "custom", "estimator": estimator.name, "model": ckpt.model_ref(),
        "temperature": temperature, "temperature_rule": rule, "images": images,
    }
    report = {**head, **report, "baselines": baselines}
    kl_b = baselines["raw_mix"]["kl"]
    report["vs_raw_mix"] = {"kl_reduction": 1 - report["kl"] / kl_b if kl_b else None}
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report without per-item rows (what ``eval --json`` prints)."""
    out = {k: v for k, v in report.items() if k not in ("items", "baselines")}
    out["baselines"] = {k: {kk: vv for kk, vv in b.items() if kk != "items"} for k, b in report["baselines"].items()}
    return out


def _fmt(x: Any, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def markdown(report: dict[str, Any], title: str) -> str:
    arms = [("DisTok", report)] + [(k, v) for k, v in report["baselines"].items()]
    lines = [
        f"# {title}",
        "",
        f"- model: `{report['model']['hash'][:19]}` (recipe `{report['model']['recipe']}`, step {report['model']['step']})",
        f"- estimator: `{report['estimator']}`, T = {report['temperature']:.4g} ({report['temperature_rule']}), "
        f"{report['images']} image(s) per token",
        f"- evaluation set: `{report['eval_set']}` ({report['n']} distributions)",
        "",
        "| arm | arity | n | KL ↓ | outside | inside | JS ↓ | top-1 ↑ | top-share error ↓ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in arms:
        for a, part in [("all", arm)] + [(k, arm["by_arity"][k]) for k in ARITIES]:
            if not part["n"]:
                continue
            lines.append(
                f"| {name} | {a} | {part['n']} | {_fmt(part['kl'], '.4f')} | {_fmt(part['kl_outside'], '.3f')} | "
                f"{_fmt(part['kl_inside'], '.3f')} | {_fmt(part['js'], '.4f')} | {_fmt(part['top1'], '.3f')} | "
                f"{_fmt(part['top_share_error'], '.3f')} |"
            )
    lines += [
        "",
        f"cosine(token, nearest class t_i), mean: {report['nearest_cosine']:.4f}",
        "",
        "| # | input | DisTok estimate (top 3) | KL | raw-mix KL |",
        "|---|---|---|---|---|",
    ]
    for i, (r, b) in enumerate(zip(report["items"], report["baselines"]["raw_mix"]["items"])):
        inp = ", ".join(f"{c} {p:.2f}" for c, p in dists.top(r["input"], 4))
        est = ", ".join(f"{c} {p:.2f}" for c, p in dists.top(r["estimate"], 3))
        lines.append(f"| {i} | {inp} | {est} | {r['kl']:.3f} | {b['kl']:.3f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path, title: str) -> list[str]:
    from distok_cli.files.tokenfile import atomic_write
    from distok_cli.plots import bar_pairs_png

    worst = sorted(range(len(report["items"])), key=lambda i: -report["items"][i]["kl"])
    picked = sorted(set(range(min(3, len(worst)))) | set(worst[:3]))  # the first three and the three worst
    panels = [(f"#{i}: KL(input ‖ estimate) {report['items'][i]['kl']:.3f}", report["items"][i]["input"],
               report["items"][i]["estimate"]) for i in picked]
    files = {
        "eval.json": json.dumps(report, sort_keys=True, indent=1).encode(),
        "eval.md": markdown(report, title).encode(),
        "eval.png": bar_pairs_png(panels, ("input", "estimate"), title=f"{title}: input vs estimate (first three, worst three)"),
    }
    written = []
    for name, data in files.items():
        atomic_write(out_dir / name, data)
        written.append(str(out_dir / name))
    return written

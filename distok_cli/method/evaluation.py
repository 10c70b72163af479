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


def make_eval_set(
    classes: list[str], n: int = 30, seed: int = 0, arities: tuple[int, ...] = (2, 3, 4)
) -> list[dict[str, float]]:
    """Algorithm v1: per item, k classes without replacement (k uniform over ``arities``; v1's sets use 2, 3
    and 4, the protocol's sets 1 to 4), Dirichlet(1) weights sorted descending, rounded to 2 decimals with at
    least 0.05 each, the rounding error given to the largest."""
    if len(classes) < max(4, *arities):
        raise BadInput("an evaluation set needs at least 4 classes")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = arities[int(rng.integers(0, len(arities)))]
        names = [classes[i] for i in rng.choice(len(classes), size=k, replace=False)]
        w = np.sort(rng.dirichlet(np.ones(k)))[::-1]
        w = np.maximum(np.round(w, 2), 0.05)
        w[0] += 1.0 - w.sum()
        out.append({c: round(float(x), 2) for c, x in zip(names, w)})
    return out


#: The protocol (BENCHMARKS.md, "Method fidelity"): method decisions are taken on the tuning set, figures are
#: reported on the test set, whose seed was never used for tuning; both have 1 to 4 classes.
TUNING_SEED, TEST_SEED, PROTOCOL_ARITIES = 1, 2, (1, 2, 3, 4)
STYLES_FILE = "styles-v1.json"
MAX_STYLES = 100


def protocol_set(classes: list[str], which: str, n: int = 40) -> list[dict[str, float]]:
    """The protocol's ``tuning`` or ``test`` distributions."""
    seed = {"tuning": TUNING_SEED, "test": TEST_SEED}[which]
    return make_eval_set(classes, n, seed, PROTOCOL_ARITIES)


def default_styles(which: str = "held_out") -> list[str]:
    """The committed styles (``recipes/eval/styles-v1.json``): ``held_out`` (reported) or ``tuning``."""
    from distok_cli.files.recipes import recipe_dirs

    for d in recipe_dirs():
        p = d / "eval" / STYLES_FILE
        if p.is_file():
            return list(json.loads(p.read_text(encoding="utf-8"))[which])
    raise BadInput(f"the styles file eval/{STYLES_FILE} is missing from the recipes folder")


def read_styles(path: Path) -> list[str]:
    """A JSON list of style prefixes, or an object whose ``held_out`` is one (``recipes/eval/styles-v1.json``)."""
    data = _read_json(path, "a JSON list of styles")
    if isinstance(data, dict) and "held_out" in data:
        data = data["held_out"]
    if not isinstance(data, list) or not data or len(data) > MAX_STYLES:
        raise BadInput(f'{path}: expected a JSON list of 1 to {MAX_STYLES} styles such as "a watercolor of a"')
    from distok_cli.files.recipes import check_style

    for i, style in enumerate(data):
        try:
            check_style(style if isinstance(style, str) else "")
        except ValueError:
            raise BadInput(
                f'{path}: style {i} must be a prompt prefix such as "a watercolor of a" '
                "(1 to 200 characters, no '<>', braces or outer spaces)"
            ) from None
    if len(set(data)) != len(data):
        raise BadInput(f"{path}: a style is listed twice")
    return list(data)


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
    data = _read_json(path, "a JSON evaluation set")
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


def _read_json(path: Path, what: str) -> Any:
    """A small JSON file, strictly (no NaN/Infinity), or one line saying why not."""
    try:
        if not path.is_file():
            raise BadInput(f"{path}: no such file")
        if path.stat().st_size > MAX_SET_BYTES:
            raise BadInput(f"{path}: larger than {MAX_SET_BYTES >> 20} MiB")
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadInput(f"{path}: not {what} ({type(exc).__name__})") from None


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
        rows.append(
            {
                "input": p,
                "estimate": est,
                "arity": arity(p),
                "kl": dists.kl(p, est),
                "js": dists.js(p, est),
                "kl_outside": outside,
                "kl_inside": inside,
                "top1": top_c == dists.top(est, 1)[0][0],
                "top_share_error": abs(est[top_c] - top_p),
            }
        )
    out = summarise(rows)
    out["by_arity"] = {a: summarise([r for r in rows if r["arity"] == a]) for a in ARITIES}
    out["items"] = rows
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("kl", "js", "kl_outside", "kl_inside", "top1", "top_share_error")
    if not rows:
        return {"n": 0, **dict.fromkeys(keys)}
    return {"n": len(rows), **{k: float(np.mean([float(r[k]) for r in rows])) for k in keys}}


def _logits(
    estimator: Any, vectors: np.ndarray, first_seed: int, images: int, batch: int, progress: Progress | None
) -> np.ndarray:
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


def free_tokens(
    estimator: Any,
    inputs: list[dict[str, float]],
    classes: list[str],
    start: np.ndarray,
    temperature: float,
    progress: Progress | None = None,
) -> np.ndarray:
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


def work(
    n_items: int,
    n_classes: int,
    free_token: bool,
    calibrate: bool = True,
    styles: int = 0,
    refine: int = 0,
    judge: bool = False,
) -> int:
    """Units of progress :func:`evaluate` reports (for a progress bar's total)."""
    arms = 2 + (1 if free_token else 0) + (1 if refine else 0)
    per_style = (n_classes if calibrate else 0) + arms * n_items
    return per_style * (1 + styles) * (2 if judge else 1) + (FREE_TOKEN_STEPS if free_token else 0) + refine


def style_of(prompt: str) -> str | None:
    """The style prefix of a prompt "S <>" (None when the token is not at its end)."""
    return prompt[:-3] if prompt.endswith(" <>") and prompt.count("<>") == 1 else None


def _score_arms(
    estimator: Any,
    arms: dict[str, np.ndarray],
    inputs: list[dict[str, float]],
    classes: list[str],
    temperature: float | None,
    calibrate_to: float,
    images: int,
    batch: int,
    progress: Progress | None,
) -> tuple[float, str, dict[str, Any]]:
    """Every arm's tokens read by one estimator (one style) at one T: (T, rule, {arm: score})."""
    rule = "fixed (eval.temperature)"
    if temperature is None:
        pure = _logits(estimator, arms["class_tokens"], 1_000_000, images, batch, progress)
        temperature = calibrate_temperature(pure, calibrate_to)
        rule = f"calibrated: class tokens give their own class a mean probability of {calibrate_to:g}"
    scores = {
        name: score(inputs, probabilities(_logits(estimator, v, 0, images, batch, progress), temperature), classes)
        for name, v in arms.items()
        if name != "class_tokens"
    }
    return temperature, rule, scores


def _brief(part: dict[str, Any]) -> dict[str, Any]:
    """A score without its per-item rows."""
    return {k: v for k, v in part.items() if k != "items"}


def _mean_over(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of per-style figures (overall and by arity) over styles."""
    keys = ("kl", "js", "top1", "top_share_error")
    out: dict[str, Any] = {k: float(np.mean([p[k] for p in parts])) for k in keys}
    out["by_arity"] = {
        a: (float(np.mean([p["by_arity"][a]["kl"] for p in parts])) if parts[0]["by_arity"][a]["n"] else None)
        for a in ARITIES
    }
    return out


def evaluate(
    ckpt: Any,
    estimator: Any,
    items: list[dict[str, float]] | None = None,
    set_name: str | None = None,
    temperature: float | None = None,
    calibrate_to: float = 0.9,
    images: int = 1,
    free_token: bool = False,
    progress: Progress | None = None,
    batch: int = 8,
    styles: list[str] | None = None,
    refine: int = 0,
    judge: bool = False,
) -> dict[str, Any]:
    """Evaluate a checkpoint and the baselines with one estimator (see the module docstring).

    Args:
        ckpt: a :class:`~distok_cli.files.checkpoint.Checkpoint`.
        estimator: has ``name``, ``prompt``, ``restyled(style)`` and
            ``logits(vectors [N, d], seeds [[int]]) -> [N, I, K]``.
        items: the distributions (default: the run's class set's versioned set).
        temperature: a fixed T; ``None`` calibrates it by the rule above (per style).
        images: renders per token (the rendering estimators average their distributions).
        free_token: also run the optimised-token floor (text estimator only; slower). It is optimised in
            the estimator's own prompt (the training style) and scored in every style.
        styles: also score every arm with the token in "S <>" and the classes in "S {}" for each style S
            (``by_style``; ``held_out`` is their mean).
        refine: also score the model's tokens after this many steps of test-time refinement
            (``baselines.refined``; the model's training styles, see :mod:`distok_cli.method.matching`).
        judge: also read every arm with the estimator's judge (``estimator.judge()``: a readout that no
            training or refinement step optimises), in every style, at its own calibrated T (``judge``).
        progress: called with the number of work units done (:func:`work` gives the total).
    """
    from distok_cli.method.generate import encode

    if items is None:
        set_name, items = eval_set_for(ckpt.classes)
    classes = ckpt.classes
    inputs = [normalise(p) for p in items]
    T = ckpt.class_embeddings.astype(np.float64)
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True)
    vectors = np.stack([encode(ckpt, p).vector for p in inputs])
    mixes = np.stack([raw_mix(ckpt, p) for p in inputs])
    arms: dict[str, np.ndarray] = {
        "class_tokens": ckpt.class_embeddings.astype(np.float32),
        "distok": vectors,
        "raw_mix": mixes,
    }
    if free_token:
        arms["free_token"] = free_tokens(
            estimator, inputs, classes, mixes, temperature or _calibrated(estimator, ckpt, calibrate_to), progress
        )
    refine_seconds = None
    if refine:
        from distok_cli.method.matching import REFINE_LR, scorer_for
        from distok_cli.method.matching import refine as refine_tokens

        P = np.array([[p.get(c, 0.0) for c in classes] for p in inputs], np.float32)
        arms["refined"], refine_seconds = refine_tokens(
            scorer_for(ckpt, estimator.text), vectors, P, refine, progress=progress
        )
    used_T, rule, scores = _score_arms(
        estimator, arms, inputs, classes, temperature, calibrate_to, images, batch, progress
    )
    report = scores.pop("distok")
    for r, v in zip(report["items"], vectors.astype(np.float64)):
        cos = Tn @ (v / np.linalg.norm(v))
        r["nearest_class"], r["nearest_cosine"] = classes[int(cos.argmax())], float(cos.max())
    report["nearest_cosine"] = float(np.mean([r["nearest_cosine"] for r in report["items"]]))
    head = {
        "eval_set": set_name or "custom",
        "estimator": estimator.name,
        "model": ckpt.model_ref(),
        "temperature": used_T,
        "temperature_rule": rule,
        "images": images,
        "training_style": style_of(getattr(estimator, "prompt", "")) or getattr(estimator, "prompt", ""),
    }
    report = {**head, **report, "baselines": scores}
    if refine:
        report["refine"] = {"steps": refine, "lr": REFINE_LR, "seconds_per_token": refine_seconds}
    kl_b = scores["raw_mix"]["kl"]
    report["vs_raw_mix"] = {"kl_reduction": 1 - report["kl"] / kl_b if kl_b else None}
    if styles:
        by_style: dict[str, Any] = {}
        for style in styles:
            t_s, _, sc = _score_arms(
                estimator.restyled(style), arms, inputs, classes, temperature, calibrate_to, images, batch, progress
            )
            by_style[style] = {"temperature": t_s, **{name: _brief(part) for name, part in sc.items()}}
        report["by_style"] = by_style
        held = {
            name: _mean_over([by_style[s][name] for s in styles])
            for name in by_style[styles[0]]
            if name != "temperature"
        }
        d, r = held["distok"]["kl"], held["raw_mix"]["kl"]
        report["held_out"] = {"styles": list(styles), **held, "kl_reduction": 1 - d / r if r else None}
    if judge:
        report["judge"] = _judged(estimator.judge(), arms, inputs, classes, styles or [], calibrate_to, batch, progress)
    return report


def metric_text(p: dict[str, float]) -> str:
    """The text an image of ``p`` is scored against by ``eval --metric``: the paper's concept prompt with
    the classes by weight ("a photo of a pig sheep snake"; ties in the set's order)."""
    return "a photo of a " + " ".join(c for c, _ in sorted(p.items(), key=lambda kv: -kv[1]))


def plain_prompts(p: dict[str, float], prompt: str) -> dict[str, tuple[str, str]]:
    """The plain-text arms of ``eval --metric`` for ``p``, as (prompt with ``<>``, the class whose embedding
    fills it): the classes named in the token's place ("a photo of a pig sheep snake") and their weighted form
    ("a photo of a 55% pig, 25% sheep, 20% snake"). The last class is typed through its own embedding t_c,
    so every arm renders through the same injection path: for a name that is one word piece of the
    tokenizer that is exactly the row typing the word gives; otherwise the mean of its pieces' rows."""
    names = [c for c, _ in sorted(p.items(), key=lambda kv: -kv[1])]
    weighted = ", ".join(f"{round(100 * p[c])}% {c}" for c in names[:-1])
    last = f"{round(100 * p[names[-1]])}% <>"
    return {
        "plain": (prompt.replace("<>", " ".join([*names[:-1], "<>"])), names[-1]),
        "weighted": (prompt.replace("<>", f"{weighted}, {last}" if weighted else last), names[-1]),
    }


#: The arms of ``eval --metric``, in the report's order.
METRIC_ARMS = ("distok", "raw_mix", "plain", "weighted")


def image_metrics(
    ckpt: Any,
    estimator: Any,
    items: list[dict[str, float]],
    scorers: list[tuple[str, Any]],
    images: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score renders with image metrics (``eval --metric``): the model's tokens and the raw mix in the
    estimator's prompt, and the plain-text prompts of the same classes (:func:`plain_prompts`).

    Each is rendered ``images`` times (seeds 0, 1, ...) by the rendering estimator's renderer, and every
    (image, :func:`metric_text`) pair is scored by each ``(label, scorer)``; an arm's figure is the mean over
    its images, then over the distributions. Returns ``{"prompt", "text", "images", "arms": {arm: {label:
    mean}}, "items": [{input, text, prompts, arm: {label: mean}}]}``.
    """
    import torch

    from distok_cli.method.generate import encode

    inputs = [normalise(p) for p in items]
    seeds = list(range(images))
    index = {c: i for i, c in enumerate(ckpt.classes)}
    rows: list[dict[str, Any]] = []
    for p in inputs:
        plain = plain_prompts(p, estimator.prompt)
        rows.append(
            {
                "input": p,
                "text": metric_text(p),
                "prompts": {arm: pr for arm, (pr, _) in plain.items()},
                "_arms": {
                    "distok": (estimator.prompt, encode(ckpt, p).vector),
                    "raw_mix": (estimator.prompt, raw_mix(ckpt, p)),
                    **{arm: (pr, ckpt.class_embeddings[index[c]]) for arm, (pr, c) in plain.items()},
                },
            }
        )
    for arm in METRIC_ARMS:
        for row in rows:
            prompt, v = row["_arms"][arm]
            batch = torch.as_tensor(np.asarray(v, np.float32))[None].repeat(images, 1)
            imgs = estimator.renderer.render(batch, [prompt] * images, seeds, estimator.settings)
            row[arm] = {
                label: float(np.mean(scorer.scores(imgs, [row["text"]] * len(imgs)))) for label, scorer in scorers
            }
            if progress:
                progress(1)
    for row in rows:
        del row["_arms"]
    means = {arm: {label: float(np.mean([r[arm][label] for r in rows])) for label, _ in scorers} for arm in METRIC_ARMS}
    return {
        "prompt": estimator.prompt,
        "text": "a photo of a {classes by weight}",
        "images": images,
        "arms": means,
        "items": rows,
    }


def _judged(
    judge: Any,
    arms: dict[str, np.ndarray],
    inputs: list[dict[str, float]],
    classes: list[str],
    styles: list[str],
    calibrate_to: float,
    batch: int,
    progress: Progress | None,
) -> dict[str, Any]:
    """Every arm read by the judge: in the training style and, averaged, in the held-out styles (T calibrated
    by the same rule, per style)."""
    t0, _, own = _score_arms(judge, arms, inputs, classes, None, calibrate_to, 1, batch, progress)
    out: dict[str, Any] = {
        "estimator": judge.name,
        "temperature": t0,
        "training_style": {name: _brief(part) for name, part in own.items()},
    }
    if styles:
        per = [
            _score_arms(judge.restyled(s), arms, inputs, classes, None, calibrate_to, 1, batch, progress)[2]
            for s in styles
        ]
        held = {name: _mean_over([p[name] for p in per]) for name in per[0]}
        d, r = held["distok"]["kl"], held["raw_mix"]["kl"]
        out["held_out"] = {"styles": list(styles), **held, "kl_reduction": 1 - d / r if r else None}
    return out


def _calibrated(estimator: Any, ckpt: Any, calibrate_to: float) -> float:
    pure = _logits(estimator, ckpt.class_embeddings.astype(np.float32), 1_000_000, 1, 64, None)
    return calibrate_temperature(pure, calibrate_to)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report without per-item rows (what ``eval --json`` prints)."""
    out = {k: v for k, v in report.items() if k not in ("items", "baselines")}
    out["baselines"] = {k: {kk: vv for kk, vv in b.items() if kk != "items"} for k, b in report["baselines"].items()}
    if "metrics" in report:
        out["metrics"] = {k: v for k, v in report["metrics"].items() if k != "items"}
    return out


ARM_NAMES = {
    "distok": "DisTok",
    "raw_mix": "raw mix",
    "free_token": "free token",
    "refined": "refined",
    "plain": "plain prompt",
    "weighted": "weighted prompt",
}


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
    if report.get("by_style"):
        names = [n for n in ("distok", "raw_mix", "free_token", "refined") if n in report["held_out"]]
        lines += [
            "",
            f"## By style (training style `{report['training_style']}` first; the others were never trained on)",
            "",
            "| style | T | " + " | ".join(f"{ARM_NAMES[n]} KL" for n in names) + " | DisTok top-1 | raw-mix top-1 |",
            "|---|---|" + "---|" * (len(names) + 2),
        ]
        rows = [
            (f"{report['training_style']} (training)", report["temperature"], {"distok": report, **report["baselines"]})
        ]
        rows += [(s, v["temperature"], v) for s, v in report["by_style"].items()]
        for style, t_s, parts in rows:
            lines.append(
                f"| {style} | {t_s:.4g} | "
                + " | ".join(_fmt(parts[n]["kl"], ".4f") for n in names)
                + f" | {_fmt(parts['distok']['top1'], '.3f')} | {_fmt(parts['raw_mix']['top1'], '.3f')} |"
            )
        h = report["held_out"]
        lines.append(
            f"| **mean, {len(h['styles'])} held-out styles** | | "
            + " | ".join(f"**{h[n]['kl']:.4f}**" for n in names)
            + f" | {h['distok']['top1']:.3f} | {h['raw_mix']['top1']:.3f} |"
        )
        lines += [
            "",
            "Held-out styles, mean KL by arity: "
            + "; ".join(
                f"{a}: DisTok {_fmt(h['distok']['by_arity'][a], '.3f')} vs raw mix {_fmt(h['raw_mix']['by_arity'][a], '.3f')}"
                for a in ARITIES
                if h["distok"]["by_arity"][a] is not None
            ),
        ]
        if h.get("kl_reduction") is not None:
            lines.append(f"DisTok vs the raw mix in the held-out styles: KL {100 * -h['kl_reduction']:+.0f} %.")
    if report.get("judge"):
        j = report["judge"]
        names = [n for n in ("distok", "raw_mix", "free_token", "refined") if n in j["training_style"]]
        lines += [
            "",
            f"## The judge: `{j['estimator']}` (a readout no training or refinement step optimises)",
            "",
            "| readout | " + " | ".join(f"{ARM_NAMES[n]} KL" for n in names) + " | DisTok ÷ raw mix |",
            "|---|" + "---|" * (len(names) + 1),
        ]
        for label, part in [("training style", j["training_style"])] + (
            [(f"mean, {len(j['held_out']['styles'])} held-out styles", j["held_out"])] if "held_out" in j else []
        ):
            lines.append(
                f"| {label} | "
                + " | ".join(_fmt(part[n]["kl"], ".4f") for n in names)
                + f" | {part['distok']['kl'] / part['raw_mix']['kl']:.3f} |"
            )
    if report.get("refine"):
        r = report["refine"]
        lines += [
            "",
            f"Refined: {r['steps']} Adam steps (lr {r['lr']:g}) per token in the model's training styles, "
            f"{r['seconds_per_token']:.3f} s per token.",
        ]
    if report.get("metrics"):
        lines += metrics_markdown(report)
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


def metrics_markdown(report: dict[str, Any]) -> list[str]:
    """The image metrics' table (``eval --metric``), with the KL of the same estimator as ``blip-kl``."""
    m = report["metrics"]
    labels = list(m["arms"]["distok"])
    kl = {"distok": report["kl"], "raw_mix": report["baselines"]["raw_mix"]["kl"]}
    with_kl = report.get("metrics_blip_kl", False)
    lines = [
        "",
        f"## Image metrics ({m['images']} render(s) per token in `{m['prompt']}`, scored against `{m['text']}`)",
        "",
        "| arm | " + " | ".join(labels) + (" | blip-kl ↓ |" if with_kl else " |"),
        "|---|" + "---|" * (len(labels) + with_kl),
    ]
    for arm in METRIC_ARMS:
        lines.append(
            f"| {ARM_NAMES[arm]} | "
            + " | ".join(f"{m['arms'][arm][lab]:.4f}" for lab in labels)
            + ((f" | {kl[arm]:.4f} |" if arm in kl else " | — |") if with_kl else " |")
        )
    first = m["items"][0]
    lines += [
        "",
        f"Plain prompts, e.g. for {dists.label(first['input'])}: `{first['prompts']['plain']}` and "
        f"`{first['prompts']['weighted']}` (the last class typed through its own embedding t_c).",
    ]
    return lines


def write_report(report: dict[str, Any], out_dir: Path, title: str) -> list[str]:
    from distok_cli.files.safety import atomic_write
    from distok_cli.plots import bar_pairs_png

    worst = sorted(range(len(report["items"])), key=lambda i: -report["items"][i]["kl"])
    picked = sorted(set(range(min(3, len(worst)))) | set(worst[:3]))  # the first three and the three worst
    panels = [
        (
            f"#{i}: KL(input ‖ estimate) {report['items'][i]['kl']:.3f}",
            report["items"][i]["input"],
            report["items"][i]["estimate"],
        )
        for i in picked
    ]
    items_png = bar_pairs_png(
        panels, ("input", "estimate"), title=f"{title}: input vs estimate (first three, worst three)"
    )
    files = {
        "eval.json": json.dumps(report, sort_keys=True, indent=1).encode(),
        "eval.md": markdown(report, title).encode(),
    }
    if report.get("by_style"):  # eval.png: KL per style and arm; the item panels move to eval-items.png
        from distok_cli.plots import grouped_bars_png

        names = [n for n in ("distok", "raw_mix", "free_token", "refined") if n in report["held_out"]]
        styles = [f"{report['training_style']}\n(training)", *report["by_style"], "mean of the\nheld-out styles"]
        series = {
            ARM_NAMES[n]: [
                report["kl"] if n == "distok" else report["baselines"][n]["kl"],
                *(v[n]["kl"] for v in report["by_style"].values()),
                report["held_out"][n]["kl"],
            ]
            for n in names
        }
        files["eval.png"] = grouped_bars_png(
            styles,
            series,
            "KL(input ‖ estimate), lower is better",
            f"{title}: {report['n']} distributions, by prompt style",
        )
        files["eval-items.png"] = items_png
    else:
        files["eval.png"] = items_png
    written = []
    for name, data in files.items():
        atomic_write(out_dir / name, data)
        written.append(str(out_dir / name))
    return written

"""Make tokens with a trained model: ``encode`` (distribution → token) and ``sample`` (latent → token).

numpy only: one MLP forward per token, no torch, no text encoder (everything needed is in the checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli.errors import BadInput
from distok_cli.files import distributions as dists
from distok_cli.files import space, tokenfile
from distok_cli.files.checkpoint import Checkpoint
from distok_cli.files.summary import source_distribution
from distok_cli.files.tokenfile import PRIORS, TOKEN_SUFFIXES, Token
from distok_cli.progress import log

#: Largest ``--refine``: far beyond where the KL stops moving.
MAX_REFINE = 10_000
#: What ``encode`` (and the API's ``Model.encode``) refines by default (``--refine auto``), for a model
#: trained with distok's objective: measured in BENCHMARKS.md ("Method fidelity, 0.6.0").
DEFAULT_REFINE = 30


def refine_steps(refine: int | str, ckpt: Any, distribution: Any) -> int:
    """How many refinement steps ``refine`` means for a token of ``distribution`` from ``ckpt``: a number as
    given (0 to :data:`MAX_REFINE`); ``"auto"``: :data:`DEFAULT_REFINE` when the model was trained with
    distok's objective (it has training styles) and the token has a class distribution, else 0."""
    if refine == "auto":
        return (
            DEFAULT_REFINE if ckpt.config.get("styles") and ckpt.config.get("match_temperature") and distribution else 0
        )
    if isinstance(refine, bool) or not isinstance(refine, int) or not 0 <= refine <= MAX_REFINE:
        raise BadInput(f"refine must be 'auto' or a number of steps from 0 to {MAX_REFINE}, got {refine!r}")
    return refine


def _component_token(name: str, ckpt: Checkpoint) -> Token:
    tok = tokenfile.load(name)
    space.check_compatible(tok, ckpt.space)
    return tok


def encode(ckpt: Checkpoint, weights: dict[str, float], normalize: bool = True) -> Token:
    """Encode a distribution over classes (and/or token files) into a creative token."""
    classes = ckpt.classes
    index = {c: i for i, c in enumerate(classes)}
    parts: list[tuple[str, float, Token | None]] = []
    for name, w in weights.items():
        if name.endswith(TOKEN_SUFFIXES):
            parts.append((name, w, _component_token(name, ckpt)))
        elif name in index:
            parts.append((name, w, None))
        else:
            raise BadInput(
                f"unknown class {name!r}{dists.suggest(name, classes)} (the model knows {len(classes)} classes)"
            )
    total = sum(w for _, w, _ in parts)
    if not total > 0:
        raise BadInput("weights sum to zero")
    if not math.isfinite(total):
        raise BadInput("weights sum to more than a float can hold; use smaller weights")
    if normalize and abs(total - 1.0) > dists.SUM_TOLERANCE:
        shown = ", ".join(f"{n}:{w / total:.4g}" for n, w, _ in parts)
        log.info(f"weights sum to {total:g}; normalised to {shown} (--no-normalize keeps them)")
        parts = [(n, w / total, t) for n, w, t in parts]
    mixed = ckpt.reweighted({n: w for n, w, _ in parts})  # the model's own weighting of its input (if it learned one)
    mix = weighted_sum(
        [(n, mixed[n], t.vector if t is not None else ckpt.class_embeddings[index[n]]) for n, _, t in parts]
    )
    z, vectors = ckpt.tokens(mix[None])
    vector = vectors[0].astype(np.float32)
    effective = _effective_distribution(parts)
    if all(t is None for _, _, t in parts) and effective is not None:
        source: dict[str, Any] = {"kind": "distribution", "distribution": effective}
    else:
        source = {"kind": "composition", "parents": [_parent(n, w, t) for n, w, t in parts]}
        if effective is not None:
            source["distribution"] = effective
    source["z"] = [float(x) for x in z[0]]
    title = (
        dists.label(effective)
        if effective is not None
        else "composition-" + "-".join((Path(n).stem if t is not None else n) for n, _, t in parts)[:60]
    )
    return Token(vector=vector, space=ckpt.space, source=source, model=ckpt.model_ref(), title=title)


def weighted_sum(parts: list[tuple[str, float, np.ndarray]]) -> np.ndarray:
    """Σ w·v over (name, w, v), in float64 and name order, as float32: the same distribution gives the same
    bytes however it was spelt (``encode``'s input to E_dis, and eval's raw-mix baseline)."""
    mix = np.zeros(len(parts[0][2]), np.float64)
    for _, w, vec in sorted(parts, key=lambda p: p[0]):
        mix += w * np.asarray(vec, np.float64)
    return mix.astype(np.float32)


def _parent(name: str, w: float, tok: Token | None) -> dict[str, Any]:
    if tok is None:
        return {"class": name, "weight": w}
    return {"id": tok.id, "title": tok.title or Path(name).stem, "weight": w}


def _effective_distribution(parts: list[tuple[str, float, Token | None]]) -> dict[str, float] | None:
    """The class distribution a composition stands for, when every part has one and weights sum to 1."""
    total = sum(w for _, w, _ in parts)
    if abs(total - 1.0) > dists.SUM_TOLERANCE:
        return None
    acc: dict[str, float] = {}
    for name, w, tok in parts:
        if tok is None:
            acc[name] = acc.get(name, 0.0) + w
            continue
        d = source_distribution(tok)
        if d is None:
            return None
        for c, p in d.items():
            acc[c] = acc.get(c, 0.0) + w * p
    s = sum(acc.values())
    return {c: p / s for c, p in sorted(acc.items())}


def check_prior(prior: str) -> None:
    if prior not in PRIORS:
        raise BadInput(f"--prior must be one of {', '.join(PRIORS)}, got {prior!r}")


def latent(prior: str, seed: int, index: int, dim: int, scale: float) -> np.ndarray:
    """z for token ``index`` of seed ``seed``: independent of how many tokens are drawn.

    gaussian N(0, 1); laplace with unit variance (b = 1/√2); standard Cauchy (no variance; scale 1).
    """
    check_prior(prior)
    rng = np.random.default_rng([seed, index])
    if prior == "gaussian":
        z = rng.standard_normal(dim)
    elif prior == "laplace":
        z = rng.laplace(0.0, 1.0 / math.sqrt(2.0), dim)
    else:
        z = rng.standard_cauchy(dim)
    return (z * scale).astype(np.float32)


#: Largest ``--scale``: beyond it latents are far outside anything D_tok was trained on.
MAX_SCALE = 1000.0


def check_sample(n: int, prior: str, scale: float) -> None:
    check_prior(prior)
    if n < 1:
        raise BadInput("--n must be at least 1")
    if not (0 < scale <= MAX_SCALE):
        raise BadInput(f"--scale must be a positive number at most {MAX_SCALE:g}")


def sample_name(prior: str, seed: int, index: int) -> str:
    return f"{prior}-s{seed}-{index:04d}"


def sample(ckpt: Checkpoint, n: int, prior: str, scale: float, seed: int) -> Iterator[Token]:
    """Token ``i`` of a seed, for i < n, one at a time (memory stays flat in ``n``); token i does not
    depend on ``n``. Arguments are checked before the first token is made."""
    check_sample(n, prior, scale)
    return _sample(ckpt, n, prior, scale, seed)


def _sample(ckpt: Checkpoint, n: int, prior: str, scale: float, seed: int) -> Iterator[Token]:
    model = ckpt.model_ref()
    with np.errstate(over="ignore", invalid="ignore"):  # a huge --scale: checked below, not warned about
        for i in range(n):
            # The prior draw ε, in the latents' trained scale (checkpoint latent statistics): z = mean + std · ε.
            z = ckpt.standardise(latent(prior, seed, i, ckpt.latent_dim, scale)[None])
            vec = ckpt.decode(z)[0].astype(np.float32)  # one row at a time: BLAS results can depend on batch size
            if not (np.isfinite(z).all() and np.isfinite(vec).all()):
                raise BadInput(f"--scale {scale:g} makes latents or tokens overflow (token {i}); use a smaller scale")
            yield Token(
                vector=vec,
                space=ckpt.space,
                model=model,
                title=sample_name(prior, seed, i),
                source={
                    "kind": "latent",
                    "prior": prior,
                    "scale": scale,
                    "seed": seed,
                    "index": i,
                    "z": [float(x) for x in z[0]],
                },
            )


def from_pool(run: str, n: int, seed: int) -> list[Token]:
    """``n`` concepts drawn (without replacement, seeded) from a run's concept pool."""
    folder = Path(run) / "pool"
    files = sorted(folder.glob("*.distok")) if folder.is_dir() else []
    if not files:
        raise BadInput(f"{run}: the run has no concept pool entries")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
    return [tokenfile.load(files[i]) for i in sorted(pick)]

"""distok's distribution-matching objective: the text-side estimate of a token in several prompt styles.

A style S is a prompt prefix ("a watercolor of a"): the token goes into "S <>" and each class c into
"S {c}". ``q_S(c) = softmax_c(cos(E("S <token>"), E("S c")) / T)``, with E the text encoder's sentence
embedding (CLIP's pooled projection, MiniLM's mean pooling): the ``text`` estimator of ``distok estimate``,
differentiable in the token. Used by the trainer's matching task, by ``encode --refine`` and by
``distok eval``'s refined arm.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from distok_cli.backends.textside import TextSide
from distok_cli.errors import BadInput
from distok_cli.method.generate import DEFAULT_REFINE, MAX_REFINE  # noqa: F401 (DEFAULT_REFINE re-exported)
from distok_cli.progress import Progress

#: Test-time refinement: Adam's learning rate on the token (measured in BENCHMARKS.md).
REFINE_LR = 0.01


class StyleScorer:
    """Class prompts of every style, encoded once; differentiable KL(p ‖ q_S) of tokens. ``temperature`` is
    one T for every style or one per style."""

    def __init__(self, text: TextSide, classes: list[str], styles: list[str], temperature: float | list[float]) -> None:
        if not styles:
            raise BadInput("no styles to score in")
        self.text, self.classes, self.styles = text, classes, list(styles)
        self.temperature = temperature
        self.prompts = [TextSide.fill(f"{s} <>") for s in styles]
        text.check_fits(self.prompts)
        with torch.no_grad():
            self.class_emb = torch.stack(
                [F.normalize(text.encode([f"{s} {c}" for c in classes]), dim=-1).float() for s in styles]
            )  # [S, K, D]

    def cosines(self, tokens: torch.Tensor, styles: list[int]) -> torch.Tensor:
        """cos(E("S_i <token_i>"), E("S_i c")) for each token i in its style, [n, K]."""
        e = F.normalize(self.text.encode([self.prompts[s] for s in styles], tokens), dim=-1).float()
        return torch.einsum("nd,nkd->nk", e, self.class_emb[torch.tensor(styles, device=e.device)])

    def temperatures(self, styles: list[int]) -> torch.Tensor:
        """T of each row's style, [n, 1]."""
        t = self.temperature if isinstance(self.temperature, list) else [self.temperature] * len(self.styles)
        return torch.tensor([t[s] for s in styles], dtype=torch.float32, device=self.class_emb.device)[:, None]

    def kl(self, p: torch.Tensor, tokens: torch.Tensor, styles: list[int]) -> torch.Tensor:
        """KL(p ‖ q) per token [n]."""
        logq = (self.cosines(tokens, styles) / self.temperatures(styles)).log_softmax(-1)
        return (p * (p.clamp_min(1e-12).log() - logq)).sum(-1)


def refine(
    scorer: StyleScorer,
    vectors: np.ndarray,
    p: np.ndarray,
    steps: int,
    lr: float = REFINE_LR,
    progress: Progress | None = None,
) -> tuple[np.ndarray, float]:
    """Test-time refinement: ``steps`` Adam steps on each token (from ``vectors`` [N, d]) against the mean
    KL(p ‖ q_S) over the scorer's styles. Returns the tokens and the seconds it took per token."""
    if not 0 <= steps <= MAX_REFINE:
        raise BadInput(f"--refine must be between 0 and {MAX_REFINE}")
    started = time.perf_counter()
    dev = scorer.class_emb.device
    n, S = len(vectors), len(scorer.styles)
    target = torch.as_tensor(np.asarray(p, np.float32), device=dev).repeat(S, 1)
    styles = [s for s in range(S) for _ in range(n)]
    v = torch.nn.Parameter(torch.as_tensor(np.asarray(vectors, np.float32), device=dev).clone())
    opt = torch.optim.Adam([v], lr=lr)
    for _ in range(steps):
        loss = scorer.kl(target, v.repeat(S, 1), styles).sum() / S
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(1)
    return v.detach().cpu().numpy().astype(np.float32), (time.perf_counter() - started) / max(n, 1)


def scorer_for(ckpt: Any, text: TextSide | None) -> StyleScorer:
    """The scorer a checkpoint was trained with (its styles and matching temperature)."""
    styles, T = ckpt.config.get("styles"), ckpt.config.get("match_temperature")
    if not styles or not T:
        raise BadInput(
            f"{ckpt.path}: the model was not trained with distok's objective (no styles); --refine needs one that was"
        )
    assert text is not None
    return StyleScorer(text, ckpt.classes, styles, [float(x) for x in T] if isinstance(T, list) else float(T))


def model_recipe(ckpt: Any) -> Any:
    """The recipe a checkpoint was trained with: its run folder's ``recipe.yaml``, else the recipe it names."""
    from pathlib import Path

    from distok_cli.files import recipes

    if ckpt.path and (Path(ckpt.path).parent / "recipe.yaml").is_file():
        return recipes.load(str(Path(ckpt.path).parent / "recipe.yaml"))
    return recipes.load(ckpt.config.get("recipe") or "tiny")


def model_scorer(ckpt: Any, device: str = "auto", dtype: str = "auto") -> StyleScorer:
    """The scorer of the model's training styles on its recipe's text side (loaded here: torch)."""
    from distok_cli.backends.loading import pick_device
    from distok_cli.backends.registry import load_text_side
    from distok_cli.files import recipes

    if not ckpt.config.get("styles"):
        scorer_for(ckpt, None)  # raises the one-line reason
    recipe = model_recipe(ckpt)
    where, precision = recipes.device_and_dtype(recipe, device, dtype)
    text = load_text_side(recipe, pick_device(where), precision)
    if not text.space.compatible(ckpt.space):
        raise BadInput(f"the model was trained for {ckpt.space.encoder}, but its recipe loads {text.space.encoder}")
    return scorer_for(ckpt, text)


def refine_token(
    ckpt: Any, token: Any, steps: int, device: str = "auto", dtype: str = "auto", scorer: StyleScorer | None = None
) -> Any:
    """``encode --refine``: the token after ``steps`` Adam steps against the text-side estimate of its source
    distribution in the model's training styles (``scorer``: :func:`model_scorer`'s, loaded if not given).
    The source records the refinement and the mean KL over those styles before and after."""
    from dataclasses import replace

    dist = (token.source or {}).get("distribution")
    if not dist:
        raise BadInput("--refine needs a class distribution (a composition of tokens without one cannot be refined)")
    if not 1 <= steps <= MAX_REFINE:
        raise BadInput(f"--refine must be between 1 and {MAX_REFINE}")
    if not ckpt.config.get("styles"):
        scorer_for(ckpt, None)  # raises the one-line reason
    p = np.array([[dist.get(c, 0.0) for c in ckpt.classes]], np.float64)
    if not p.sum() > 0:  # a composition whose parents' classes are not this model's
        raise BadInput("--refine needs a distribution over the model's classes; this one has none of them")
    p = (p / p.sum()).astype(np.float32)
    scorer = scorer or model_scorer(ckpt, device, dtype)
    vector, seconds = refine(scorer, token.vector[None], p, steps)
    S = len(scorer.styles)
    with torch.no_grad():
        target = torch.as_tensor(p).repeat(S, 1)
        styles = list(range(S))
        before = float(scorer.kl(target, torch.as_tensor(token.vector[None]).repeat(S, 1), styles).mean())
        after = float(scorer.kl(target, torch.as_tensor(vector).repeat(S, 1), styles).mean())
    record = {
        "steps": steps,
        "lr": REFINE_LR,
        "styles": scorer.styles,
        "temperature": scorer.temperature,
        "kl_before": before,
        "kl_after": after,
        "seconds": round(seconds, 4),
    }
    return replace(token, vector=vector[0], source={**token.source, "refine": record})

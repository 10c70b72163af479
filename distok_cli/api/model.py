"""Models as the API offers them: ``load`` a trained DisTok model, then ``encode``, ``sample`` and ``sweep``
with it; ``inject`` a token into a diffusers pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput
from distok_cli.files.tokenfile import Token
from distok_cli.method.sweep import Sweep


@dataclass
class Model:
    """A trained DisTok model (its checkpoint), ready to make tokens: one MLP forward each, numpy only."""

    checkpoint: Any
    path: str
    _scorer: Any = field(default=None, repr=False, compare=False)  # the refinement's text side, loaded once
    _estimator: Any = field(default=None, repr=False, compare=False)  # the text-side estimator, loaded once
    _trained_estimator: Any = field(default=None, repr=False, compare=False)  # the training's (Trained.model())

    @property
    def classes(self) -> list[str]:
        return self.checkpoint.classes

    @property
    def space(self) -> Any:
        """The token space (encoder, fingerprint; for SDXL its parts ``clip_l`` and ``clip_g``)."""
        return self.checkpoint.space

    @property
    def hash(self) -> str:
        return self.checkpoint.hash

    def encode(
        self,
        distribution: Mapping[str, float] | str,
        normalize: bool = True,
        refine: int | str = "auto",
        device: str = "auto",
        dtype: str = "auto",
    ) -> Token:
        """The token of a class distribution: ``{"pig": 0.55, "sheep": 0.45}`` or ``"pig:0.55,sheep:0.45"``.
        Keys may also be token files (composition). Weights are normalised to sum to 1 unless ``normalize`` is
        False.

        ``refine``: ``"auto"`` (the default) takes :data:`~distok_cli.method.generate.DEFAULT_REFINE` steps of
        test-time refinement when the model was trained with distok's objective and the token has a class
        distribution (torch and the model's text encoder are loaded then, once per ``Model``); a model whose
        text encoder is not cached gives the encoder's token, with a notice. ``0``: the encoder's token
        alone, one MLP forward in numpy (no torch). A number: that many steps."""
        from distok_cli.errors import ModelNotAvailable
        from distok_cli.files import distributions as dists
        from distok_cli.method import generate
        from distok_cli.progress import log

        weights = (
            dists.parse_spec(distribution)
            if isinstance(distribution, str)
            else {str(k): dists.weight(str(k), v) for k, v in distribution.items()}
        )
        token = generate.encode(self.checkpoint, weights, normalize=normalize)
        steps = generate.refine_steps(refine, self.checkpoint, (token.source or {}).get("distribution"))
        if not steps:
            return token
        from distok_cli.method import matching

        try:
            if self._scorer is None:
                self._scorer = matching.model_scorer(self.checkpoint, device, dtype)
        except ModelNotAvailable as exc:
            if refine != "auto":
                raise
            log.warning(f"not refined ({exc.one_line()}): the encoder's token, one forward")
            return token
        return matching.refine_token(self.checkpoint, token, steps, scorer=self._scorer)

    def sample(
        self, n: int = 8, prior: str = "gaussian", seed: int = 0, scale: float = 1.0, estimate: str | None = None
    ) -> list[Token]:
        """``n`` tokens from random latents (gaussian, laplace or cauchy); token i of a seed never depends on n.
        ``estimate="text"`` stores each token's text-side estimate (the model's text encoder: torch)."""
        return list(self.samples(n, prior, seed, scale, estimate))

    def samples(
        self, n: int = 8, prior: str = "gaussian", seed: int = 0, scale: float = 1.0, estimate: str | None = None
    ) -> Iterator[Token]:
        """:meth:`sample`, one token at a time (memory stays flat in ``n``); arguments are checked at once."""
        from distok_cli.method import generate

        if estimate not in (None, "text"):
            raise BadInput(f"estimate must be 'text' (or None), got {estimate!r}")
        tokens = generate.sample(self.checkpoint, n, prior, scale, seed)
        return tokens if estimate is None else self._estimated(tokens)

    def estimator(self, device: str = "auto", dtype: str = "auto") -> Any:
        """The text-side estimator of the model's recipe (loaded once per ``Model``; torch)."""
        if self._estimator is None:
            from distok_cli.backends.token_estimators import make_token_estimator
            from distok_cli.files import recipes
            from distok_cli.method.matching import model_recipe

            recipe = model_recipe(self.checkpoint)
            self._estimator = make_token_estimator(
                recipe, *recipes.device_and_dtype(recipe, device, dtype), kind="text"
            )
            if not self._estimator.text.space.compatible(self.space):
                raise BadInput(
                    f"the model was trained for {self.space.encoder}, but its recipe loads "
                    f"{self._estimator.text.space.encoder}"
                )
        return self._estimator

    def estimate(self, token: Token, seeds: tuple[int, ...] = (0,)) -> Token:
        """``token`` with its estimate stored (``Token.estimate``: the distribution it reads as, with KL and JS
        to its source), read by the estimator training used when this model came from
        :meth:`Trained.model() <distok_cli.api.training.Trained.model>` (BLIP on renders at ``seeds``, or the
        text side), else by the recipe's text-side estimator (:meth:`estimator`)."""
        from distok_cli.jobs.estimation import estimate_record

        estimator = self._trained_estimator or self.estimator()
        return token.with_estimate(estimate_record(token, estimator, list(seeds)))

    def render(
        self,
        tokens: Sequence[Token | str | os.PathLike[str]],
        prompts: Sequence[str],
        *,
        seeds: Sequence[int] = (0,),
        output: str | os.PathLike[str] = "renders",
        grid: bool | str | os.PathLike[str] = False,
        overwrite: bool = False,
        bar: Any = None,
    ) -> Any:
        """:func:`~distok_cli.api.rendering.render` with the recipe this model was trained with (its run's
        ``recipe.yaml``, else the recipe it names); a model from :meth:`Trained.model()
        <distok_cli.api.training.Trained.model>` whose training rendered renders with that renderer (nothing
        loads twice). Returns a ``Rendered``."""
        from distok_cli.api.rendering import render

        run_recipe = Path(self.path).parent / "recipe.yaml"
        recipe = str(run_recipe) if run_recipe.is_file() else (self.checkpoint.config.get("recipe") or None)
        return render(
            tokens,
            prompts,
            seeds=list(seeds),
            output=output,
            recipe=recipe,
            grid=grid,
            overwrite=overwrite,
            bar=bar,
            _renderer=getattr(self._trained_estimator, "renderer", None),
        )

    def held_out(self, n: int = 20) -> dict[str, Any]:
        """This model's tokens against the raw mix Σ p_i t_i on ``n`` distributions it never saw (the fidelity
        protocol's test split) in the 6 held-out prompt styles, read by the text-side estimator: the
        ``held_out`` part of an ``eval`` report (``distok``, ``raw_mix``, ``kl_reduction``, ...)."""
        from distok_cli.method import evaluation

        report = evaluation.evaluate(
            self.checkpoint,
            self.estimator(),
            evaluation.protocol_set(self.classes, "test", n),
            "protocol-test",
            styles=evaluation.default_styles(),
        )
        return report["held_out"]

    def _estimated(self, tokens: Iterator[Token]) -> Iterator[Token]:
        from distok_cli.jobs.estimation import estimate_record

        for token in tokens:
            yield token.with_estimate(estimate_record(token, self.estimator(), [0]))

    def sweep(self, *ends: Any, steps: int = 9, grid: int | None = None, slerp: bool = False) -> Sweep:
        """Tokens along a path, in order (``Sweep.tokens``; ``Sweep.labels``, ``Sweep.smoothness``):

        - ``sweep("pig:sheep", steps=9)``: from all pig to all sheep;
        - ``sweep({"pig": .55, "sheep": .45}, "cat:1", steps=7)``: from one distribution to another;
        - ``sweep("pig:sheep:snake", grid=5)``: the triangle of three-class mixtures (15 tokens);
        - ``sweep(token_a, token_b, steps=8, slerp=True)`` (tokens or token files): through this model's latent
          space when both come from it, else through token space (``Sweep.kind`` says which).
        """
        from distok_cli.files import distributions as dists
        from distok_cli.files import tokenfile
        from distok_cli.method import sweep as sw

        ckpt = self.checkpoint
        if len(ends) == 1 and isinstance(ends[0], str) and sw.corners(ends[0]):
            names = sw.corners(ends[0]) or []
            if len(names) == 3:
                if grid is None:
                    raise BadInput("three corners (a:b:c) make a triangle: give grid, e.g. --grid 5")
                return sw.triangle(ckpt, names, grid)
            if len(names) != 2:
                raise BadInput(f"{ends[0]!r}: give two classes (a:b) for a line or three (a:b:c) for a triangle")
            if grid is not None:
                raise BadInput("grid is for three corners (a:b:c); a line between two classes takes steps")
            sw.check_classes(ckpt, names)
            return sw.weights(ckpt, {names[0]: 1.0}, {names[1]: 1.0}, steps)
        if len(ends) != 2:
            raise BadInput(f"a sweep has one corner spec (a:b or a:b:c) or two ends, got {len(ends)}")
        if grid is not None:
            raise BadInput("grid is for three corners (a:b:c); between two ends give steps")
        is_token = [
            isinstance(e, Token) or (isinstance(e, (str, os.PathLike)) and str(e).endswith(tokenfile.TOKEN_SUFFIXES))
            for e in ends
        ]
        if all(is_token):
            a, b = (e if isinstance(e, Token) else tokenfile.load(e) for e in ends)
            return sw.between(ckpt, a, b, steps, slerp)
        if any(is_token):
            raise BadInput("give two distributions or two token files as the ends, not one of each")
        if slerp:
            raise BadInput("slerp is for sweeps between tokens; a weights sweep is linear in the weights")
        a, b = (dists.parse_spec(e) if isinstance(e, str) else dict(e) for e in ends)
        return sw.weights(ckpt, a, b, steps)


def load(run: str | os.PathLike[str] | None = None) -> Model:
    """A trained model: a run folder or its ``model.safetensors``; ``None``: ``$DISTOK_MODEL`` or the default
    model (``distok model``), as the CLI chooses."""
    from distok_cli.files import checkpoint, config

    path = config.choose_model(str(run) if run is not None else None).path
    return Model(checkpoint.load(path), path)


def inject(pipe: Any, token: Token | str | os.PathLike[str], name: str) -> str:
    """Add ``token`` (a :class:`Token` or a token file) to a diffusers pipeline as the prompt word ``name``:
    SD 1.x, the Kandinsky 2.1 prior (or a combined Kandinsky pipeline), SDXL or FLUX.1 (a two-part token, one
    part per text encoder). Refuses a token of another encoder or layout. Returns ``name``."""
    from distok_cli.backends.inject import inject as _inject
    from distok_cli.files import tokenfile

    tok = token if isinstance(token, Token) else tokenfile.load(Path(token))
    return _inject(pipe, tok, name)

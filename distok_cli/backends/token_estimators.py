"""Estimators the training loop can call on a batch of token vectors.

* :class:`RenderingEstimator`: render each token (renderer + seeds), then BLIP-ITM; returns the images.
* :class:`TextEstimator`: no rendering. ``p(c) = softmax_c(cos(E(prompt with <t>), E(template(c))) / T)``,
  where E is the text encoder's sentence embedding. Works in any token space (CLIP-L or MiniLM) and costs
  milliseconds: a cheap first look before a BLIP render, and the estimator of the offline minilm recipe.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from distok_cli.backends.textside import TextSide
from distok_cli.files.recipes import ESTIMATOR_KINDS
from distok_cli.progress import log


class RenderingEstimator:
    def __init__(self, renderer: Any, blip: Any, settings: Any, prompt: str, classes: list[str]) -> None:
        self.renderer, self.blip, self.settings = renderer, blip, settings
        self.prompt, self.classes = prompt, classes
        self.name = blip.name
        self.text = renderer.text

    def describe(self) -> dict[str, Any]:
        return {**self.blip.describe(), "prompts": [self.prompt]}

    def restyled(self, style: str) -> RenderingEstimator:
        """Render with "S <>" and, for BLIP-ITM, match the captions "S {class}"."""
        blip = copy.copy(self.blip)
        blip.cfg = self.blip.cfg.model_copy(update={"template": f"{style} {{}}"})
        blip._text_cache = {}
        return RenderingEstimator(self.renderer, blip, self.settings, f"{style} <>", self.classes)

    def __call__(self, vectors: torch.Tensor, seeds: list[int]) -> tuple[torch.Tensor, list[Any] | None]:
        images: list[Any] = []
        for i in range(0, len(seeds), self.settings.batch_size):
            sl = slice(i, i + self.settings.batch_size)
            images += self.renderer.render(vectors[sl], [self.prompt] * len(seeds[sl]), seeds[sl], self.settings)
        return self.blip.distributions(images, self.classes), images

    def logits(self, vectors: torch.Tensor, seeds: list[list[int]]) -> torch.Tensor:
        """BLIP's per-image class scores (before the temperature), [N tokens, I images, K]: token i is
        rendered once per seed in ``seeds[i]``."""
        n, per = len(seeds), len(seeds[0])
        flat = [s for row in seeds for s in row]
        rows = vectors.repeat_interleave(per, 0)
        images: list[Any] = []
        for i in range(0, len(flat), self.settings.batch_size):
            sl = slice(i, i + self.settings.batch_size)
            images += self.renderer.render(rows[sl], [self.prompt] * len(flat[sl]), flat[sl], self.settings)
        return self.blip.logits(images, self.classes).float().cpu().view(n, per, -1)


class TextEstimator:
    def __init__(
        self,
        text: TextSide,
        classes: list[str],
        template: str,
        prompt: str,
        temperature: float,
        name: str,
        pooling: str | None = None,
    ) -> None:
        self.text, self.classes, self.prompt, self.temperature = text, classes, prompt, temperature
        self.template, self.pooling, self.encoder_name = template, pooling, name
        self.name = f"text-judge:{name}" if pooling else f"text:{name}"
        with torch.no_grad():
            self.class_emb = torch.nn.functional.normalize(
                text.encode([template.format(c) for c in classes], **self._pooling()), dim=-1
            )

    def _pooling(self) -> dict[str, str]:
        """The judge's pooling as an argument (a text side without alternatives, SDXL's, takes none)."""
        return {"pooling": self.pooling} if self.pooling else {}

    def describe(self) -> dict[str, Any]:
        return {
            "estimator": self.name,
            "temperature": self.temperature,
            "template": self.template,
            "prompts": [self.prompt],
            **self._pooling(),
        }

    def restyled(self, style: str) -> TextEstimator:
        """The same estimator with the token in "S <>" and the classes in "S {class}"."""
        return TextEstimator(
            self.text, self.classes, f"{style} {{}}", f"{style} <>", self.temperature, self.encoder_name, self.pooling
        )

    def judge(self) -> TextEstimator | None:
        """The second readout (``distok eval``'s judge): the same prompts read through a pooling of the same
        encoder that no training, matching or refinement step uses (:data:`TextSide.JUDGE_POOLING`); None
        for a text side without one (SDXL's two encoders)."""
        if not isinstance(self.text, TextSide):
            return None
        return TextEstimator(
            self.text,
            self.classes,
            self.template,
            self.prompt,
            self.temperature,
            self.encoder_name,
            TextSide.JUDGE_POOLING[self.text.pooling],
        )

    def cosines(self, vectors: torch.Tensor) -> torch.Tensor:
        """cos(E(prompt with the token), E(template(c))), [N, K]; differentiable in ``vectors``."""
        e = self.text.encode([TextSide.fill(self.prompt)] * vectors.shape[0], vectors, **self._pooling())
        return torch.nn.functional.normalize(e, dim=-1) @ self.class_emb.T

    def logits(self, vectors: torch.Tensor, seeds: list[list[int]] | None = None) -> torch.Tensor:
        """Class scores before the temperature, [N, 1, K] (no rendering: one "image" per token)."""
        with torch.no_grad():
            return self.cosines(vectors).float().cpu()[:, None, :]

    def __call__(self, vectors: torch.Tensor, seeds: list[int] | None = None) -> tuple[torch.Tensor, None]:
        return (self.logits(vectors)[:, 0] / self.temperature).softmax(-1), None


class PriorEstimator:
    """Kandinsky 2.1 only: the prior's predicted CLIP image embedding against CLIP text embeddings of the
    class prompts: ``p(c) = softmax_c(cos(prior(prompt with <t>), E_clip(template(c))) / T)``. No decoder,
    no BLIP; T around 0.01 matches CLIP's logit scale of 100."""

    def __init__(
        self, renderer: Any, settings: Any, classes: list[str], template: str, prompt: str, temperature: float
    ) -> None:
        self.renderer, self.settings, self.classes = renderer, settings, classes
        self.prompt, self.template, self.temperature = prompt, template, temperature
        self.text = renderer.text
        self.name = f"prior:{renderer.cfg.prior}"
        with torch.no_grad():
            self.class_emb = torch.nn.functional.normalize(
                self.text.encode([template.format(c) for c in classes]).float(), dim=-1
            )

    def describe(self) -> dict[str, Any]:
        return {
            "estimator": self.name,
            "temperature": self.temperature,
            "template": self.template,
            "prompts": [self.prompt],
        }

    def restyled(self, style: str) -> PriorEstimator:
        return PriorEstimator(
            self.renderer, self.settings, self.classes, f"{style} {{}}", f"{style} <>", self.temperature
        )

    def logits(self, vectors: torch.Tensor, seeds: list[list[int]]) -> torch.Tensor:
        """Cosines of the prior's image embedding (one per seed in ``seeds[i]``) with the class prompts, [N, I, K]."""
        n, per = len(seeds), len(seeds[0])
        flat = [s for row in seeds for s in row]
        rows_in = vectors.repeat_interleave(per, 0)
        rows = []
        for i in range(0, len(flat), self.settings.batch_size):
            sl = slice(i, i + self.settings.batch_size)
            emb, _ = self.renderer.image_embeds(rows_in[sl], [self.prompt] * len(flat[sl]), flat[sl], self.settings)
            e = torch.nn.functional.normalize(emb.float(), dim=-1).to(self.class_emb.device)
            rows.append((e @ self.class_emb.T).cpu())
        return torch.cat(rows).view(n, per, -1)

    def __call__(self, vectors: torch.Tensor, seeds: list[int]) -> tuple[torch.Tensor, None]:
        return (self.logits(vectors, [[s] for s in seeds])[:, 0] / self.temperature).softmax(-1), None


def make_token_estimator(recipe: Any, device: str, dtype: str = "auto", kind: str | None = None) -> Any:
    """The estimator a recipe asks for (or ``kind``): ``blip-itm``/``blip-vqa`` (render + BLIP), ``text`` or ``prior``.

    The returned object has ``text`` (the token space it checks tokens against), ``name``, ``describe()``
    and ``__call__(vectors [N, d], seeds) -> (probabilities [N, K], images or None)``.
    """
    from distok_cli.backends.loading import pick_device
    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.registry import make_renderer
    from distok_cli.errors import BadInput

    device = pick_device(device)
    kind = kind or recipe.estimator.kind
    e, classes = recipe.estimator, list(recipe.classes)
    settings = Settings.from_config(recipe.render)
    if kind == "text":
        from distok_cli.backends.registry import load_text_side

        log.info("loading the text encoder")
        text = load_text_side(recipe, device, dtype)
        return TextEstimator(text, classes, e.template, e.prompt, e.temperature, text.space.encoder)
    if kind == "prior" and recipe.render.backend != "kandinsky21":
        raise BadInput("the prior estimator needs a Kandinsky 2.1 recipe (render.backend: kandinsky21)")
    if kind not in ESTIMATOR_KINDS:
        raise BadInput(f"unknown estimator {kind!r} ({', '.join(ESTIMATOR_KINDS)})")
    log.info(f"loading {recipe.render.backend} models" + (" and the BLIP estimator" if kind != "prior" else ""))
    renderer = make_renderer(recipe.render, device, dtype)
    if kind == "prior":
        return PriorEstimator(renderer, settings, classes, e.template, e.prompt, e.temperature)

    from distok_cli.backends.blip import make_estimator

    blip = make_estimator(e.model_copy(update={"kind": kind}), device, dtype)
    return RenderingEstimator(renderer, blip, settings, e.prompt, classes)

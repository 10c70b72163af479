"""Estimators the training loop can call on a batch of token vectors.

* :class:`RenderingEstimator`: render each token (renderer + seeds), then BLIP-ITM; returns the images.
* :class:`TextEstimator`: no rendering. ``p(c) = softmax_c(cos(E(prompt with <t>), E(template(c))) / T)``,
  where E is the text encoder's sentence embedding. Works in any token space (CLIP-L or MiniLM) and costs
  milliseconds: a cheap first look before a BLIP render, and the estimator of the offline minilm recipe.
"""

from __future__ import annotations

from typing import Any

import torch

from ..backends.textside import TextSide


class RenderingEstimator:
    def __init__(self, renderer: Any, blip: Any, settings: Any, prompt: str, classes: list[str]) -> None:
        self.renderer, self.blip, self.settings = renderer, blip, settings
        self.prompt, self.classes = prompt, classes
        self.name = blip.name

    def describe(self) -> dict[str, Any]:
        return {**self.blip.describe(), "prompts": [self.prompt]}

    def __call__(self, vectors: torch.Tensor, seeds: list[int]) -> tuple[torch.Tensor, list[Any] | None]:
        images: list[Any] = []
        for i in range(0, len(seeds), self.settings.batch_size):
            sl = slice(i, i + self.settings.batch_size)
            images += self.renderer.render(vectors[sl], [self.prompt] * len(seeds[sl]), seeds[sl], self.settings)
        return self.blip.distributions(images, self.classes), images


class TextEstimator:
    def __init__(self, text: TextSide, classes: list[str], template: str, prompt: str, temperature: float, name: str) -> None:
        self.text, self.classes, self.prompt, self.temperature = text, classes, prompt, temperature
        self.template = template
        self.name = f"text:{name}"
        with torch.no_grad():
            self.class_emb = torch.nn.functional.normalize(text.encode([template.format(c) for c in classes]), dim=-1)

    def describe(self) -> dict[str, Any]:
        return {"estimator": self.name, "temperature": self.temperature, "template": self.template, "prompts": [self.prompt]}

    def logits(self, vectors: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            e = self.text.encode([TextSide.fill(self.prompt)] * vectors.shape[0], vectors)
            return torch.nn.functional.normalize(e, dim=-1) @ self.class_emb.T

    def __call__(self, vectors: torch.Tensor, seeds: list[int] | None = None) -> tuple[torch.Tensor, None]:
        return (self.logits(vectors).float() / self.temperature).softmax(-1).cpu(), None

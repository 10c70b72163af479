"""The paper's image metrics, each a scorer of (image, text) pairs: ``scores(images, texts) -> list[float]``.

- ``clipscore``: CLIPScore (Hessel et al. 2021, as torchmetrics defines it: 100 · max(cos(image, text), 0)),
  on ``eval.clipscore_models``: the first is CLIP ViT-L/14 (the encoder the tokens of Kandinsky 2.1 and SD 1.x
  live in), so a second CLIP is reported beside it as a bias check (``clipscore:MODEL``). Written here, not
  taken from torchmetrics: torchmetrics 1.9's ``CLIPScore`` divides what transformers 5's
  ``get_image_features`` returns (a model output, no longer a tensor) and fails;
- ``pickscore``: PickScore v1 through plain transformers (``CLIPModel`` + the processor its authors name):
  ``logit_scale.exp() · cos(image, text)``;
- ``vqascore``: t2v-metrics' ``VQAScore`` (P("Yes" | image, "Does this figure show '{text}'?")); its 3.x
  releases take transformers 5, but the paper's CLIP-FlanT5 scorer is only in the legacy 3.0, so distok's
  figures are not byte-comparable with the paper's;
- ``imagereward``: the ``image-reward`` package's ``ImageReward-v1.0``, whose pins conflict with
  transformers 5: run it in its own environment.

Each model loads through the same ``from_pretrained`` code as every other (tiny CLIP twins in the tests). A
metric whose package or weights are missing raises :class:`~distok_cli.errors.ModelNotAvailable` with one
line saying what to install or cache: never a traceback, never a silent zero.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from distok_cli.backends.loading import from_pretrained
from distok_cli.errors import BadInput, ModelNotAvailable

#: What ``eval --metric`` takes; ``blip-kl`` is the consistency KL of BLIP on the same renders.
METRICS = ("clipscore", "pickscore", "vqascore", "imagereward", "blip-kl")
#: Per metric, the package it needs and what to install.
PACKAGES = {
    "vqascore": (
        "t2v_metrics",
        "pip install t2v-metrics (its VQA models download on first use; the paper's CLIP-FlanT5 needs the legacy "
        "t2v-metrics 3.0 in its own environment)",
    ),
    "imagereward": (
        "ImageReward",
        "pip install image-reward in an environment of its own (its pins conflict with transformers 5)",
    ),
}


def check_metrics(spec: str) -> list[str]:
    """``"clipscore,pickscore"`` → the names, each known, none twice (exit 2 otherwise)."""
    names = [n.strip() for n in spec.split(",")]
    bad = [n for n in names if n not in METRICS]
    if bad or not names or len(set(names)) != len(names):
        raise BadInput(
            f"--metric {spec!r}: give one or more of {', '.join(METRICS)}, comma-separated, each once"
            + (f" ({', '.join(map(repr, bad))} unknown)" if bad else "")
        )
    return names


def needs(name: str) -> None:
    """Refuse a metric whose package is not installed, with what to install (one line)."""
    if name in PACKAGES:
        module, how = PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise ModelNotAvailable(f"--metric {name} needs the {module} package", hint=how)


def _device_of(model: Any) -> Any:
    return next(model.parameters()).device


def _features(out: Any) -> Any:
    """A CLIP's projected features: transformers 5 returns a model output (its ``pooler_output``), 4 a tensor."""
    return getattr(out, "pooler_output", out)


class _Clip:
    """A CLIP (model + processor) loaded by distok's ``from_pretrained``: cosines of (image, text) pairs."""

    def __init__(self, model_ref: str, processor_ref: str, device: str) -> None:
        from transformers import AutoProcessor, CLIPModel

        self.model = from_pretrained(CLIPModel, model_ref).to(device).eval()
        self.processor = from_pretrained(AutoProcessor, processor_ref)

    def cosines(self, images: list[Any], texts: list[str]) -> Any:
        import torch

        dev = _device_of(self.model)
        with torch.inference_mode():
            pix = self.processor(images=[i.convert("RGB") for i in images], return_tensors="pt").to(dev)
            txt = self.processor(text=texts, padding=True, truncation=True, return_tensors="pt").to(dev)
            img = torch.nn.functional.normalize(_features(self.model.get_image_features(**pix)).float(), dim=-1)
            tex = torch.nn.functional.normalize(_features(self.model.get_text_features(**txt)).float(), dim=-1)
            return (img * tex).sum(-1)


class ClipScore(_Clip):
    """CLIPScore: ``100 · max(cos(image, text), 0)``."""

    def __init__(self, ref: str, device: str) -> None:
        super().__init__(ref, ref, device)
        self.name, self.ref = "clipscore", ref

    def scores(self, images: list[Any], texts: list[str]) -> list[float]:
        return (100 * self.cosines(images, texts).clamp(min=0)).cpu().tolist()


class PickScore(_Clip):
    """PickScore v1: ``logit_scale.exp() · cos(image, text)`` of a CLIP fine-tuned on human preferences."""

    def __init__(self, model_ref: str, processor_ref: str, device: str) -> None:
        super().__init__(model_ref, processor_ref, device)
        self.name, self.ref = "pickscore", model_ref

    def scores(self, images: list[Any], texts: list[str]) -> list[float]:
        return (float(self.model.logit_scale.detach().exp()) * self.cosines(images, texts).cpu()).tolist()


class VQAScore:
    """t2v-metrics' VQAScore: ``t2v_metrics.VQAScore(model=NAME)(images=[paths], texts=[text])`` gives an
    [images × texts] tensor of P("Yes"); distok passes one text per image and keeps the diagonal."""

    def __init__(self, model: str, device: str) -> None:
        needs("vqascore")
        import t2v_metrics

        self.name, self.ref = "vqascore", model
        try:
            self.metric = t2v_metrics.VQAScore(model=model, device=device)
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(
                f"--metric vqascore: cannot load {model!r} ({' '.join(str(exc).split())[:120]})",
                hint="run once with network access to cache it",
            ) from None

    def scores(self, images: list[Any], texts: list[str]) -> list[float]:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="distok-vqa-") as tmp:
            paths = []
            for i, image in enumerate(images):
                paths.append(str(Path(tmp) / f"{i}.png"))
                image.save(paths[-1])
            return [float(self.metric(images=[p], texts=[t]).reshape(-1)[0]) for p, t in zip(paths, texts)]


class ImageRewardScore:
    """ImageReward: ``ImageReward.load(NAME).score(prompt, [images])`` (a float for one image)."""

    def __init__(self, model: str, device: str) -> None:
        needs("imagereward")
        import ImageReward

        self.name, self.ref = "imagereward", model
        try:
            self.model = ImageReward.load(model, device=device)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelNotAvailable(
                f"--metric imagereward: cannot load {model!r} ({' '.join(str(exc).split())[:120]})",
                hint="run once with network access to cache it",
            ) from None

    def scores(self, images: list[Any], texts: list[str]) -> list[float]:
        out = []
        for image, text in zip(images, texts):
            s = self.model.score(text, [image])
            out.append(float(s[0] if isinstance(s, list | tuple) else s))
        return out


def make_scorers(names: list[str], cfg: Any, device: str) -> list[Any]:
    """The scorers of ``names`` (``blip-kl`` is not one: eval reads it with its BLIP estimator), each model
    from the recipe's ``eval`` section; every package is checked before any model loads."""
    from distok_cli.backends.loading import pick_device, quiet_libraries

    for name in names:
        needs(name)
    quiet_libraries()
    device = pick_device(device)
    out: list[Any] = []
    for name in names:
        if name == "clipscore":
            out += [ClipScore(ref, device) for ref in cfg.clipscore_models]
        elif name == "pickscore":
            out.append(PickScore(cfg.pickscore_model, cfg.pickscore_processor, device))
        elif name == "vqascore":
            out.append(VQAScore(cfg.vqascore_model, device))
        elif name == "imagereward":
            out.append(ImageRewardScore(cfg.imagereward_model, device))
    return out


def label(scorer: Any, first_clip: str) -> str:
    """The report's key of a scorer: its metric, and for a CLIPScore beside the first, the model too."""
    return scorer.name if scorer.name != "clipscore" or scorer.ref == first_clip else f"clipscore:{scorer.ref}"

"""Class-distribution estimators: what classes an image (or a token's renders) look like.

``blip-itm`` (default): BLIP image–text matching. For each image and class c we score the caption
``template.format(c)`` (default "a photo of a {}") with the ITM head and take the match log-odds
``s_c = logit(match) − logit(no match)``; the distribution is ``softmax_c(s_c / T)`` with temperature
``T`` (recipe ``estimator.temperature``, default 1). As in Salesforce's original BLIP code the text
starts with the ``[ENC]`` token when the tokenizer has one. Several images are averaged (mean of the
per-image distributions). The vision tower runs once per image; only the text side sees every class.

``blip-vqa``: BLIP question answering; each class is ranked by the answer log-likelihood given the
question ("What animal is in the photo?", as in the paper), see :class:`BlipVqaEstimator`.
"""

from __future__ import annotations

from typing import Any

from distok_cli.backends.loading import from_pretrained, placement
from distok_cli.errors import BadInput
from distok_cli.files.recipes import EstimatorConfig


class BlipItmEstimator:
    kind = "blip-itm"

    def __init__(
        self, cfg: EstimatorConfig, device: str = "auto", dtype: str = "auto", built: tuple[Any, Any] | None = None
    ) -> None:
        from transformers import BlipForImageTextRetrieval, BlipProcessor

        self.cfg = cfg
        self.device, self.dtype = placement(device, dtype)
        if built is None:
            self.processor = from_pretrained(BlipProcessor, cfg.model)
            model = from_pretrained(BlipForImageTextRetrieval, cfg.model, dtype=self.dtype)
        else:  # (model, processor) built in memory, for the GPU benchmark
            model, self.processor = built
        self.model = model.to(self.device, self.dtype).eval()
        tok = self.processor.tokenizer
        enc = tok.convert_tokens_to_ids("[ENC]") if "[ENC]" in tok.get_vocab() else None
        self.enc_id = enc
        self.name = f"blip-itm:{cfg.model}"
        self._text_cache: dict[tuple[str, ...], Any] = {}

    def _texts(self, classes: list[str]) -> Any:
        key = tuple(classes)
        if key not in self._text_cache:
            tok = self.processor.tokenizer
            batch = tok([self.cfg.template.format(c) for c in classes], padding=True, return_tensors="pt")
            ids = batch.input_ids.clone()
            if self.enc_id is not None:
                ids[:, 0] = self.enc_id
            self._text_cache[key] = (ids.to(self.device), batch.attention_mask.to(self.device))
        return self._text_cache[key]

    def logits(self, images: list[Any], classes: list[str]) -> Any:
        """Match log-odds, [N images, K classes]."""
        import torch

        if not images:
            raise BadInput("no images to estimate")
        ids, mask = self._texts(classes)
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt").pixel_values
        n, k = len(images), len(classes)
        with torch.inference_mode():
            img = self.model.vision_model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state
            img = img.repeat_interleave(k, 0)
            att = torch.ones(img.shape[:-1], dtype=torch.long, device=self.device)
            txt = self.model.text_encoder(
                input_ids=ids.repeat(n, 1),
                attention_mask=mask.repeat(n, 1),
                encoder_hidden_states=img,
                encoder_attention_mask=att,
            ).last_hidden_state
            itm = self.model.itm_head(txt[:, 0, :]).float()
        return (itm[:, 1] - itm[:, 0]).view(n, k)

    def distributions(self, images: list[Any], classes: list[str]) -> Any:
        """Per-image distributions [N, K] (float32 CPU tensor)."""
        return (self.logits(images, classes) / self.cfg.temperature).softmax(-1).cpu()

    def describe(self) -> dict[str, Any]:
        return {"estimator": self.name, "temperature": self.cfg.temperature, "template": self.cfg.template}


class BlipVqaEstimator:
    """BLIP visual question answering, answers ranked as in the paper's "What animal is in the photo?".

    For each class c, ``ll_c`` is the answer decoder's log-likelihood of the answer "c" (all its word
    pieces and the closing [SEP], after the [DEC] start token) given the image and ``estimator.question``;
    the distribution is ``softmax_c(ll_c / T)`` (Salesforce BLIP's ``rank_answer``, over every class).
    """

    kind = "blip-vqa"

    def __init__(self, cfg: EstimatorConfig, device: str = "auto", dtype: str = "auto") -> None:
        from transformers import BlipForQuestionAnswering, BlipProcessor

        self.cfg = cfg
        self.device, self.dtype = placement(device, dtype)
        self.processor = from_pretrained(BlipProcessor, cfg.model)
        self.model = from_pretrained(BlipForQuestionAnswering, cfg.model, dtype=self.dtype).to(self.device).eval()
        self.bos = self.model.config.text_config.bos_token_id
        self.name = f"blip-vqa:{cfg.model}"

    def logits(self, images: list[Any], classes: list[str]) -> Any:
        """Answer log-likelihoods, [N images, K classes]."""
        import torch

        if not images:
            raise BadInput("no images to estimate")
        tok = self.processor.tokenizer
        q = tok([self.cfg.question] * len(images), return_tensors="pt").to(self.device)
        a = tok(list(classes), padding=True, return_tensors="pt").to(self.device)
        a_ids = a.input_ids.clone()
        a_ids[:, 0] = self.bos
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt").pixel_values
        n, k = len(images), len(classes)
        with torch.inference_mode():
            img = self.model.vision_model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state
            img_att = torch.ones(img.shape[:-1], dtype=torch.long, device=self.device)
            qh = self.model.text_encoder(
                input_ids=q.input_ids,
                attention_mask=q.attention_mask,
                encoder_hidden_states=img,
                encoder_attention_mask=img_att,
            ).last_hidden_state
            logits = self.model.text_decoder(
                input_ids=a_ids.repeat(n, 1),
                attention_mask=a.attention_mask.repeat(n, 1),
                encoder_hidden_states=qh.repeat_interleave(k, 0),
                encoder_attention_mask=q.attention_mask.repeat_interleave(k, 0),
            ).logits.float()
        logp = logits[:, :-1].log_softmax(-1).gather(-1, a_ids.repeat(n, 1)[:, 1:, None])[..., 0]
        ll = (logp * a.attention_mask.repeat(n, 1)[:, 1:]).sum(-1)
        return ll.view(n, k)

    def distributions(self, images: list[Any], classes: list[str]) -> Any:
        return (self.logits(images, classes) / self.cfg.temperature).softmax(-1).cpu()

    def describe(self) -> dict[str, Any]:
        return {"estimator": self.name, "temperature": self.cfg.temperature, "question": self.cfg.question}


def make_estimator(cfg: EstimatorConfig, device: str = "auto", dtype: str = "auto") -> Any:
    if cfg.kind == "blip-itm":
        return BlipItmEstimator(cfg, device, dtype)
    if cfg.kind == "blip-vqa":
        return BlipVqaEstimator(cfg, device, dtype)
    raise BadInput(f"estimator kind {cfg.kind!r} needs a token, not an image (use it with a token file)")


def mean_distribution(rows: Any, classes: list[str]) -> dict[str, float]:
    """Average per-image distributions and return a dict that sums to 1 (renormalised in float64)."""
    import numpy as np

    m = np.asarray(rows, dtype=np.float64).mean(0)
    m = m / m.sum()
    return {c: float(p) for c, p in zip(classes, m)}

"""The token space: a CLIP tokenizer + text encoder with placeholder tokens whose embeddings we set.

Two paths share one forward hook on the encoder's input-embedding layer:

* differentiable (training): ``encode(prompts, vectors)`` with ``vectors`` requiring grad — the hook
  replaces the placeholder rows with the vectors via ``torch.where``, so gradients reach the vectors and
  never the frozen encoder;
* batched inference (rendering): ``with text.inject(vectors): pipe(prompts)`` — many *different* tokens
  in one batch, one per prompt row, through the pipeline's own ``_encode_prompt``.

Pitfall handled here: legacy CLIP configs set ``eos_token_id == 2``, and transformers then pools at
``input_ids.argmax()``, which lands on our added placeholder (id 49408 > EOS 49407) instead of EOS. We
set the real EOS id before adding placeholders, so pooling happens at the EOS token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from distok_cli.errors import BadInput
from distok_cli.files.space import SpacePart, TokenSpace, check_compatible, space_fingerprint, split

PLACEHOLDERS = ("<distok>", "<distok-b>")


def pooling_module(text_encoder: Any) -> Any:
    """The module whose ``eos_token_id`` CLIP's pooling reads: the model itself for a ``CLIPTextModel`` of
    transformers 5, its ``text_model`` for ``CLIPTextModelWithProjection`` (and for transformers 4)."""
    return getattr(text_encoder, "text_model", text_encoder)


def fix_legacy_eos(text_encoder: Any, tokenizer: Any) -> bool:
    """Make pooling use the EOS token when the config carries the legacy ``eos_token_id == 2``."""
    cfg = text_encoder.config
    if getattr(cfg, "eos_token_id", None) == 2 and tokenizer.eos_token_id not in (None, 2):
        cfg.eos_token_id = tokenizer.eos_token_id
        module = pooling_module(text_encoder)
        if hasattr(module, "eos_token_id"):
            module.eos_token_id = tokenizer.eos_token_id
        return True
    return False


class TextSide:
    """Tokenizer + frozen text encoder + placeholder injection.

    Args:
        tokenizer: a CLIP tokenizer (the pipeline's own; placeholders are added to it).
        text_encoder: ``CLIPTextModelWithProjection`` (Kandinsky prior) or ``CLIPTextModel`` (SD 1.x).
        encoder_ref: the model reference recorded in token files (Hub id or folder).
        subfolder: where the encoder sits inside ``encoder_ref`` ("text_encoder" for pipelines).
        pooling: "clip" (pooled EOS state, projected when the model has a projection) or "mean"
            (attention-masked mean, L2-normalised: sentence encoders such as MiniLM).
    """

    def __init__(
        self,
        tokenizer: Any,
        text_encoder: Any,
        encoder_ref: str,
        subfolder: str = "text_encoder",
        pooling: str = "clip",
    ) -> None:
        import torch

        self.pooling = pooling
        self.tokenizer = tokenizer
        self.encoder = text_encoder
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        fix_legacy_eos(text_encoder, tokenizer)
        emb = text_encoder.get_input_embeddings().weight
        rows = int(emb.shape[0])
        #: the rows that are words: the tokenizer's own vocabulary (T5's matrix has spare rows past its words:
        #: 32,128 rows for 32,100 words), which is what the fingerprint covers and ``inject`` checks
        self.vocab_size = min(rows, int(tokenizer.vocab_size))
        self.dim = int(emb.shape[1])
        self.fingerprint = space_fingerprint(emb.detach()[: self.vocab_size].to("cpu", torch.float16).numpy())
        self.space = TokenSpace(encoder_ref, self.dim, self.fingerprint, subfolder)
        missing = [p for p in PLACEHOLDERS if p not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_tokens(missing)
        self.ids = [tokenizer.convert_tokens_to_ids(p) for p in PLACEHOLDERS]
        if max(self.ids) >= rows:
            text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            fix_legacy_eos(text_encoder, tokenizer)
        self._vectors: Any = None
        self._inputs_cache: dict[tuple[str, ...], tuple[Any, Any]] = {}
        # The hook sits on every embedding module that reads the input matrix: T5's encoder looks its words up
        # through its own ``embed_tokens``, a module tied to ``shared`` (get_input_embeddings) by weight only.
        weight = text_encoder.get_input_embeddings().weight
        self._handles = [
            m.register_forward_hook(self._hook)
            for m in text_encoder.modules()
            if isinstance(m, torch.nn.Embedding) and m.weight is weight
        ]

    # -------------------------------------------------------------------------------------- injection
    @classmethod
    def from_pipeline(cls, ref: str, device: str, torch_dtype: Any, projection: bool = False) -> TextSide:
        """A diffusers pipeline's CLIP text side alone (its ``tokenizer`` and ``text_encoder`` subfolders):
        ``CLIPTextModelWithProjection`` with ``projection`` (the Kandinsky 2.1 prior's), else ``CLIPTextModel``."""
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

        from distok_cli.backends.loading import from_pretrained

        tok = from_pretrained(CLIPTokenizer, ref, subfolder="tokenizer")
        model = CLIPTextModelWithProjection if projection else CLIPTextModel
        enc = from_pretrained(model, ref, subfolder="text_encoder", dtype=torch_dtype).to(device)
        return cls(tok, enc, ref)

    def _hook(self, module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        import torch

        if self._vectors is None or not inputs:
            return output
        ids = inputs[0]
        placeholders = self.ids[: self._vectors.shape[1]]
        if ids.shape[0] != self._vectors.shape[0]:
            # Another batch than the token's (the pipelines' unconditional prompts): it must hold no
            # placeholder. Looking is a host-device sync, so it is done only here.
            if any(bool((ids == pid).any()) for pid in placeholders):
                raise BadInput(f"{ids.shape[0]} prompts with a token but {self._vectors.shape[0]} token vectors")
            return output
        # The token's own batch: no data-dependent branch, so no sync and nothing to break a CUDA graph or
        # a compiled graph; rows without the placeholder keep their embedding.
        for p, pid in enumerate(placeholders):
            output = torch.where((ids == pid)[..., None], self._vectors[:, p, None, :].to(output.dtype), output)
        return output

    @contextmanager
    def inject(self, vectors: Any) -> Iterator[None]:
        """Within the block, placeholder rows take ``vectors`` ([B, d] or [B, P, d], row b for prompt b)."""
        import torch

        v = torch.as_tensor(vectors) if not isinstance(vectors, torch.Tensor) else vectors
        if v.dim() == 2:
            v = v[:, None, :]
        if v.shape[-1] != self.dim:
            raise BadInput(f"token has {v.shape[-1]} values but this text encoder expects {self.dim}")
        device = self.encoder.get_input_embeddings().weight.device
        self._vectors = v.to(device)
        try:
            yield
        finally:
            self._vectors = None

    def check_token(self, token: Any) -> None:
        """A token file may be used here: same token space, or (plain file, no provenance) same dimension."""
        check_compatible(token, self.space)

    # ----------------------------------------------------------------------------------------- prompts
    @staticmethod
    def fill(template: str, n_tokens: int = 1) -> str:
        """Replace each ``<>`` with a placeholder token (first → ``<distok>``, second → ``<distok-b>``)."""
        if template.count("<>") != n_tokens:
            raise BadInput(f"prompt {template!r} must contain '<>' {'once' if n_tokens == 1 else f'{n_tokens} times'}")
        out = template
        for p in PLACEHOLDERS[:n_tokens]:
            out = out.replace("<>", f" {p} ", 1)
        return " ".join(out.split())

    def check_fits(self, filled_prompts: list[str]) -> None:
        """Every prompt must keep its placeholder within the encoder's context (77 tokens for CLIP)."""
        ids = self.tokenize(list(dict.fromkeys(filled_prompts)))
        for row, prompt in zip(ids, dict.fromkeys(filled_prompts)):
            if not bool((row == self.ids[0]).any()):
                raise BadInput(
                    f"prompt {prompt.replace(PLACEHOLDERS[0], '<>')!r} is too long: the token falls past the text encoder's context"
                )

    def tokenize(self, prompts: list[str]) -> Any:
        return self._batch(prompts).input_ids

    def _batch(self, prompts: list[str]) -> Any:
        if self.pooling == "mean":  # sentence encoders: pad to the longest prompt, mask the padding
            return self.tokenizer(prompts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        # CLIP: always 77 positions, as the pipelines do
        return self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )

    def _trim(self, input_ids: Any) -> Any:
        """Drop the padding after the last prompt's EOS. CLIP's attention is causal and its pooled output
        is the state at the first EOS, so positions after it cannot change the result: "a photo of a <>"
        runs 7 positions instead of 77 (an exact speed-up; shapes change, so float rounding may too)."""
        eos = self.tokenizer.eos_token_id
        if eos is None or getattr(pooling_module(self.encoder), "eos_token_id", None) != eos:
            return input_ids
        hit = input_ids == eos
        if not bool(hit.any(dim=-1).all()):
            return input_ids
        return input_ids[:, : int(hit.int().argmax(dim=-1).max()) + 1]

    def _inputs(self, prompts: list[str]) -> tuple[Any, Any]:
        """Token ids (trimmed for CLIP, on the CPU) and attention mask, on the encoder's device. Cached:
        training encodes the same batch (q_a × n) every step: tokenizing it again each step is wasted work."""
        device = self.encoder.get_input_embeddings().weight.device
        key = (str(device), *prompts)
        hit = self._inputs_cache.get(key)
        if hit is None:
            batch = self._batch(prompts)
            ids = batch.input_ids if self.pooling == "mean" else self._trim(batch.input_ids)
            hit = (ids.to(device), batch.attention_mask[:, : ids.shape[1]].to(device))
            if len(self._inputs_cache) >= 32:
                self._inputs_cache.clear()
            self._inputs_cache[key] = hit
        return hit

    #: The judge's pooling for each encoder's own (``distok eval``'s second readout): one that no training,
    #: matching or refinement step ever reads. Sentence encoders (mean) are judged by the max over
    #: positions; CLIP (pooled EOS state) by the mean of the last hidden states up to EOS.
    JUDGE_POOLING = {"mean": "max", "clip": "mean"}

    def encode(self, prompts: list[str], vectors: Any = None, pooling: str | None = None) -> Any:
        """E(prompt), [B, D]: CLIP's pooled (and, with a projection, projected) embedding, or for
        ``pooling="mean"`` the attention-masked mean of the last hidden states, L2-normalised.

        ``vectors`` ([B, d] or [B, P, d]) fill the placeholders; gradients flow to them. ``pooling`` (default:
        the encoder's own) may name another: ``"mean"`` or ``"max"`` over the prompt's positions (for CLIP,
        of its last hidden states up to EOS), L2-normalised.
        """
        import contextlib

        import torch

        how = pooling or self.pooling
        ids, mask = self._inputs(prompts)
        ctx = self.inject(vectors) if vectors is not None else contextlib.nullcontext()
        with ctx:
            if self.pooling == "mean":
                out = self.encoder(input_ids=ids, attention_mask=mask)
            else:
                out = self.encoder(input_ids=ids)
        if how == "clip":
            emb = getattr(out, "text_embeds", None)
            return emb if emb is not None else out.pooler_output
        h = out.last_hidden_state
        if self.pooling == "clip":  # CLIP's ids are trimmed to the last EOS of the batch: mask up to each row's own
            eos = self.tokenizer.eos_token_id
            mask = ((ids == eos).int().cumsum(-1) - (ids == eos).int()) == 0
        m = mask[..., None].to(h.dtype)
        if how == "max":
            pooled = h.masked_fill(m == 0, torch.finfo(h.dtype).min).amax(1)
        else:
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def class_embeddings(self, classes: list[str]) -> Any:
        """t_i for each class: the mean of the input embeddings of the class name's word pieces.

        "polar bear" → mean(emb(polar), emb(bear)) over its BPE pieces, BOS/EOS excluded.
        """
        import torch

        table = self.encoder.get_input_embeddings().weight.detach()
        rows = []
        for name in classes:
            ids = self.tokenizer(name, add_special_tokens=False).input_ids
            if not ids:
                raise BadInput(f"class name {name!r} has no tokens")
            rows.append(table[torch.tensor(ids, device=table.device)].float().mean(0))
        return torch.stack(rows)

    def embedding_matrix(self) -> np.ndarray:
        import torch

        return self.encoder.get_input_embeddings().weight.detach()[: self.vocab_size].to("cpu", torch.float32).numpy()


class PartedTextSide:
    """A token space with one part per text encoder (SDXL's CLIP-L + OpenCLIP-G, FLUX's CLIP-L + T5): the
    parts' :class:`TextSide` hooks injected together, a token being the parts concatenated in order.

    What training, the estimators and the renderers use of a text side, but ``encode``: each backend's
    subclass gives its own E (what its base model reads of its encoders).
    """

    def __init__(self, sides: tuple[TextSide, ...], names: tuple[str, ...], ref: str) -> None:
        self.sides = sides
        self.layout = tuple((name, side.dim) for name, side in zip(names, sides))
        self.dim = sum(d for _, d in self.layout)
        self.space = TokenSpace.with_parts(
            ref, tuple(SpacePart(n, s.dim, s.fingerprint, s.space.subfolder) for n, s in zip(names, sides))
        )

    def _split(self, vectors: Any) -> list[Any]:
        """``vectors`` ([..., dim]) as one tensor per part, in order."""
        import torch

        v = torch.as_tensor(vectors) if not isinstance(vectors, torch.Tensor) else vectors
        if v.shape[-1] != self.dim:
            raise BadInput(
                f"token has {v.shape[-1]} values but this token space ({self.space.describe()}) has {self.dim}"
            )
        return list(split(v, self.layout).values())

    @contextmanager
    def inject(self, vectors: Any) -> Iterator[None]:
        """Within the block, each encoder's placeholder rows take that encoder's part of ``vectors``."""
        with ExitStack() as stack:
            for side, part in zip(self.sides, self._split(vectors)):
                stack.enter_context(side.inject(part))
            yield

    def check_token(self, token: Any) -> None:
        check_compatible(token, self.space)

    def check_fits(self, filled_prompts: list[str]) -> None:
        for side in self.sides:
            side.check_fits(filled_prompts)

    def class_embeddings(self, classes: list[str]) -> Any:
        """t_i = [t_i in the first encoder | t_i in the second | ...], each the mean of the name's pieces."""
        import torch

        return torch.cat([side.class_embeddings(classes) for side in self.sides], -1)

    def encode(self, prompts: list[str], vectors: Any = None) -> Any:
        raise NotImplementedError

"""Put a token into a diffusers pipeline the user already has, under a name of their choosing.

SD 1.x (``text_encoder``), the Kandinsky 2.1 prior (``text_encoder``; or ``prior_text_encoder`` in the
combined pipeline), SDXL and FLUX.1 (``text_encoder`` + ``text_encoder_2``, one part each) are read the same way:
for each text encoder, in the token's part order, the name is added to its tokenizer, the embedding matrix
grows by one row, and the row is the token's vector (or part). A token made for another encoder (its
space's fingerprint differs from the pipeline's matrix) is refused, as are a width or part-count mismatch
and a name the tokenizer already knows.
"""

from __future__ import annotations

from typing import Any

from distok_cli.backends.textside import fix_legacy_eos
from distok_cli.errors import BadInput
from distok_cli.files.space import describe_layout, space_fingerprint
from distok_cli.files.tokenfile import Token

#: (tokenizer, text encoder) attribute pairs, in a token's part order, for each pipeline family.
ENCODER_ATTRS = (
    (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")),  # SD 1.x, the Kandinsky prior, SDXL, FLUX
    (("prior_tokenizer", "prior_text_encoder"),),  # Kandinsky's combined pipelines
)


def encoders(pipe: Any) -> list[tuple[Any, Any]]:
    """The pipeline's (tokenizer, text encoder) pairs a token goes into, in part order."""
    for family in ENCODER_ATTRS:
        pairs = [(getattr(pipe, t, None), getattr(pipe, e, None)) for t, e in family]
        pairs = [(t, e) for t, e in pairs if t is not None and e is not None]
        if pairs:
            return pairs
    raise BadInput(f"{type(pipe).__name__} has no CLIP text encoder with a tokenizer to put a token into")


def inject(pipe: Any, token: Token, name: str) -> str:
    """Add ``token`` to ``pipe`` as the prompt word ``name`` (all checks first, then every encoder)."""
    import torch

    pairs = encoders(pipe)
    parts = list(token.part_vectors().values()) or [token.vector]
    what = token.path or token.short_id
    widths = [int(e.get_input_embeddings().weight.shape[1]) for _, e in pairs]
    if len(parts) != len(pairs) or [len(p) for p in parts] != widths:
        raise BadInput(
            f"{what}: token has {describe_layout(token.layout, token.dim)}; {type(pipe).__name__}'s text "
            f"encoders take {' + '.join(map(str, widths))} values"
        )
    if not name.strip() or any(c.isspace() for c in name):
        raise BadInput(f"name {name!r}: one prompt word, no spaces")
    fingerprints = (
        [p.fingerprint for p in token.space.parts]
        if token.space and token.space.parts
        else ([token.space.fingerprint] if token.space else [None] * len(pairs))
    )
    for (tok, enc), fp in zip(pairs, fingerprints):
        if name in tok.get_vocab():
            raise BadInput(f"name {name!r} is already a word of the pipeline's tokenizer: choose another")
        if fp is not None:
            matrix = enc.get_input_embeddings().weight.detach()[: tok.vocab_size].to("cpu", torch.float16).numpy()
            if space_fingerprint(matrix) != fp:
                raise BadInput(
                    f"{what} was made for another text encoder ({token.space.encoder}), not this "  # type: ignore[union-attr]
                    "pipeline's (fingerprints differ)"
                )
    for (tok, enc), vec in zip(pairs, parts):
        tok.add_tokens([name])
        enc.resize_token_embeddings(len(tok), mean_resizing=False)
        fix_legacy_eos(enc, tok)  # pooling must stay at EOS, not at the new (largest) id
        weight = enc.get_input_embeddings().weight
        with torch.no_grad():
            weight[tok.convert_tokens_to_ids(name)] = torch.as_tensor(vec, dtype=weight.dtype, device=weight.device)
    return name

"""Export tokens as textual-inversion embeddings that ComfyUI, AUTOMATIC1111, InvokeAI and diffusers load.

What these tools need (read from their loaders; ``formats/distok-token-v1.md`` §10 cites them):

- the suffix ``.safetensors``: ComfyUI reads a file as safetensors only by that suffix (else it tries a
  pickle and drops the token silently), A1111 skips other suffixes, InvokeAI refuses them;
- one tensor ``emb_params`` of shape ``[1, 768]``: InvokeAI probes that key and picks SD 1.x from the
  width (a ``[768]`` tensor fails there); the others take the one tensor as it is;
- for SDXL exactly two tensors, ``clip_l`` ``[1, 768]`` and ``clip_g`` ``[1, 1280]``, nothing else: ComfyUI
  and A1111 look those keys up, and InvokeAI would take a file that also holds ``emb_params`` for SD 1.x;
- for FLUX.1 ``clip_l`` ``[1, 768]`` and the T5 part ``[1, 4096]``, named ``t5xxl`` for ComfyUI (its key,
  ``comfy/text_encoders/flux.py``) and ``t5`` for diffusers (the key its FLUX training script writes, loaded
  with one ``load_textual_inversion`` call per encoder); AUTOMATIC1111/Forge load no T5 embedding and
  InvokeAI's probe knows SD 1.x, SD 2.x and SDXL only, so both are refused;
- a name that is the trigger word: A1111 uses the file stem, ComfyUI ``embedding:STEM``, InvokeAI the model
  name (the stem by default), diffusers whatever ``token=`` says.

An exported file is still a distok token file (the same metadata, plus ``distok.export``), so distok reads
it back with its whole provenance. Only numpy is imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from distok_cli.errors import BadInput
from distok_cli.files import safety, space

if TYPE_CHECKING:  # annotations only: the token file module imports this one (Token.export)
    from distok_cli.files.tokenfile import Token

#: Text encoders whose token-embedding space is CLIP ViT-L/14's (the SD 1.x text encoder), by Hub id.
CLIP_L_REPOS = (
    "openai/clip-vit-large-patch14",
    "kandinsky-community/kandinsky-2-1-prior",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "runwayml/stable-diffusion-v1-5",
    "CompVis/stable-diffusion-v1-4",
    "CompVis/stable-diffusion-v1-3",
    "CompVis/stable-diffusion-v1-2",
    "CompVis/stable-diffusion-v1-1",
)
CLIP_L_DIM = 768
DTYPES = ("float32", "float16")
SUFFIX = ".safetensors"
#: A trigger word: lowercase letters, digits, '-' and '_', 3 to 64 characters, starting with a letter or
#: digit, and not letters only (so it can never be an everyday word that a prompt uses for itself).
NAME_RULE = re.compile(r"[a-z0-9][a-z0-9_-]{2,63}")
DEFAULT_TEMPLATE = "{title}-{id6}"


@dataclass(frozen=True)
class Base:
    """A base model's embedding files: its parts (``()``: one 768-d vector), what each tool calls a part's
    tensor when that differs, and the tools that load none (with the reason)."""

    name: str
    title: str
    layout: tuple[tuple[str, int], ...]
    recipe: str
    tensor_names: dict[str, dict[str, str]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return space.describe_layout(self.layout, CLIP_L_DIM) if self.layout else f"one {CLIP_L_DIM}-d vector"


#: What each base model's embedding files hold: SD 1.x one 768-d vector, SDXL clip_l (768) + clip_g (1280),
#: FLUX.1 clip_l (768) + t5 (4096), which ComfyUI reads as t5xxl (comfy/text_encoders/flux.py).
BASES = {
    "sd1": Base("sd1", "SD 1.x", (), "sd15-animals"),
    "sdxl": Base("sdxl", "SDXL", space.SDXL_LAYOUT, "sdxl-animals"),
    "flux": Base(
        "flux",
        "FLUX.1",
        space.FLUX_LAYOUT,
        "flux-animals",
        tensor_names={"comfyui": {"t5": "t5xxl"}},
        refused={
            "a1111": "AUTOMATIC1111 and Forge load no T5 embedding (Forge #2101 is open), so the t5 part would be lost",
            "invokeai": "InvokeAI loads textual inversions for SD 1.x, SD 2.x and SDXL only (its probe knows token "
            "widths 768, 1024 and 1280)",
        },
    ),
}


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    folder: str  # where the tool looks, relative to its install

    def usage(self, path: str, name: str, base: str = "sd1") -> str:
        model = {"sdxl": "an SDXL model", "flux": "a FLUX.1 model"}.get(base, "an SD 1.x model")
        if self.name == "comfyui":
            return f"ComfyUI: put {path} in {self.folder}/ and write embedding:{name} in a prompt ({model})"
        if self.name == "a1111":
            return f"AUTOMATIC1111: put {path} in {self.folder}/ and write {name} in a prompt ({model})"
        if self.name == "invokeai":
            return f"InvokeAI: install {path} by path (Models > Add Model) and write <{name}> in a prompt ({model})"
        if base in ("sdxl", "flux"):
            (first, _), (second, _) = BASES[base].layout
            eos = (
                '; getattr(pipe.text_encoder, "text_model", pipe.text_encoder).eos_token_id = pipe.tokenizer.eos_token_id'
                if base == "flux"
                else ""
            )
            why = (
                " (the last call makes CLIP-L pool at the end of the prompt, where distok reads it, not at the new "
                "word: FLUX reads CLIP-L's pooled output)"
                if base == "flux"
                else ""
            )
            return (
                f'diffusers: sd = safetensors.torch.load_file("{path}"); '
                f'pipe.load_textual_inversion(sd["{first}"], token="{name}", text_encoder=pipe.text_encoder, '
                f'tokenizer=pipe.tokenizer); pipe.load_textual_inversion(sd["{second}"], token="{name}", '
                f"text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2){eos}; then write {name} in a prompt{why}"
            )
        return f'diffusers: pipe.load_textual_inversion("{path}", token="{name}"), then write {name} in a prompt'


TARGETS = {
    "comfyui": Target("comfyui", "ComfyUI", "ComfyUI/models/embeddings"),
    "a1111": Target("a1111", "AUTOMATIC1111", "stable-diffusion-webui/embeddings"),
    "invokeai": Target("invokeai", "InvokeAI", ""),
    "diffusers": Target("diffusers", "diffusers", ""),
}


def in_clip_l_space(token: Token) -> bool:
    """Whether the token's recorded encoder is CLIP ViT-L/14's text encoder (a Hub id above, or a local
    copy whose folder is named after one, e.g. ``…/kandinsky-2-1-prior`` or a Hub cache snapshot)."""
    if token.space is None:
        return token.dim == CLIP_L_DIM  # a plain file: its width is all there is to go on
    if token.dim != CLIP_L_DIM:
        return False
    ref = token.space.encoder
    if ref in CLIP_L_REPOS:
        return True
    parts = Path(ref).parts
    for repo in CLIP_L_REPOS:
        cache_name = "models--" + repo.replace("/", "--")
        if cache_name in parts or (len(parts) >= 1 and parts[-1] == repo.split("/")[1]):
            return True
    return False


def base_of(token: Token) -> str:
    """The base model a token's embedding file is for, by its part names: ``sdxl`` for clip_l + clip_g,
    ``flux`` for clip_l + t5, else ``sd1``."""
    names = tuple(n for n, _ in token.layout)
    return next((b.name for b in BASES.values() if b.layout and names == tuple(n for n, _ in b.layout)), "sd1")


def _what_it_is(token: Token, own: str) -> str:
    if own == "sd1":
        return f"a one-part {token.dim}-d token"
    title = BASES[own].title
    return f"{'an' if title.startswith('S') else 'a'} {title} token ({' + '.join(n for n, _ in token.layout)})"


def check_exportable(token: Token, target: Target, base: str = "auto") -> str:
    """Refuse a token that ``target`` cannot use on ``base`` (auto: the token's own); return the base."""
    what = token.path or token.short_id
    if base not in ("auto", *BASES):
        raise BadInput(f"--base must be auto, {', '.join(list(BASES)[:-1])} or {list(BASES)[-1]}, got {base!r}")
    own = base_of(token)
    if base not in ("auto", own):
        want = BASES[base]
        raise BadInput(
            f"{what} is {_what_it_is(token, own)}; {want.title} embeddings hold {want.describe()}: export it "
            f"for {BASES[own].title} (--base {own}), or train on {want.title} (--recipe {want.recipe}) and "
            "encode the distribution there"
        )
    if target.name in BASES[own].refused:
        raise BadInput(
            f"{what} is {_what_it_is(token, own)}: {BASES[own].refused[target.name]}; use --to comfyui or --to diffusers"
        )
    if token.plain:
        raise BadInput(
            f"{what} is a plain textual-inversion file (no distok provenance): it loads in {target.label} as it "
            f"is, under a .safetensors name"
        )
    twin = token.space is not None and token.space.encoder.startswith("twin:")
    if twin and target.name != "diffusers":
        raise BadInput(
            f"{what} was made with a random-weight twin ({token.space.encoder}): it means nothing in "  # type: ignore[union-attr]
            f"{target.label}; export tokens from a model trained on the real Kandinsky 2.1, SD 1.x, SDXL or "
            "FLUX.1 text encoders"
        )
    if own != "sd1":
        if token.layout != BASES[own].layout and not twin:
            raise BadInput(
                f"{what} has parts {token.space.describe()}; {BASES[own].title}'s are {BASES[own].describe()}"  # type: ignore[union-attr]
            )
        return own
    if twin:
        return own
    if not in_clip_l_space(token):
        encoder = token.space.encoder if token.space is not None else "an unknown encoder"
        shape = " + ".join(f"{n} ({d})" for n, d in token.layout) if token.layout else f"{token.dim}-d"
        raise BadInput(
            f"{what} is a {shape} token of {encoder}; {target.label} loads SD 1.x embeddings, which live "
            f"in CLIP ViT-L/14's 768-d space (encoders: {', '.join(CLIP_L_REPOS[:3])}, …), SDXL ones "
            "(clip_l 768 + clip_g 1280) and FLUX.1 ones (clip_l 768 + t5 4096)"
        )
    return own


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")


def name_for(token: Token, template: str, index: int) -> str:
    """The trigger word for ``token``: ``template`` with ``{title}``, ``{id}`` (12 hex digits of the content
    id), ``{id6}``, ``{stem}`` (the input file's stem) and ``{i}`` (its position) filled in, then lowercased
    with every other character made ``-``."""
    fields = {
        "title": _slug(token.title or "") or "token",
        "id": token.short_id,
        "id6": token.short_id[:6],
        "stem": _slug(Path(token.path).stem) if token.path else "token",
        "i": str(index),
    }
    try:
        raw = template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInput(f"--name {template!r}: use {{title}}, {{id}}, {{id6}}, {{stem}} or {{i}} ({exc})") from None
    name = _slug(raw)[:64].strip("-_")
    if not NAME_RULE.fullmatch(name) or name.isalpha():
        raise BadInput(
            f"--name gives {name or raw!r}: a trigger word needs 3 to 64 of a-z, 0-9, '-', '_' and at least one "
            "character that is not a letter, so it never stands for an ordinary word"
        )
    return name


def exported(token: Token, target: Target, name: str, dtype: str, base: str = "sd1") -> Token:
    """``token`` as it is written for ``target``: float16 values when asked (its content id then names
    those values), and a ``distok.export`` record naming the target, the trigger word and the source id."""
    if dtype not in DTYPES:
        raise BadInput(f"--dtype must be float32 or float16, got {dtype!r}")
    vec = np.asarray(token.vector, np.float32)
    if dtype == "float16":
        if not np.isfinite(vec.astype(np.float16)).all():
            raise BadInput(f"{token.path or token.short_id}: values beyond float16's range (use --dtype float32)")
        vec = vec.astype(np.float16).astype(np.float32)
    record: dict[str, object] = {"target": target.name, "name": name, "dtype": dtype, "source_id": token.id}
    renamed = BASES[base].tensor_names.get(target.name)
    if renamed:
        record["tensor_names"] = dict(renamed)
    return replace(token, vector=vec, exported=record, title=token.title or name)


def plan(
    tokens: list[Token],
    target: Target,
    dest: Path,
    template: str,
    dtype: str,
    overwrite: bool,
    serialize: Callable[[Token], bytes],
    base: str = "auto",
) -> list[tuple[Token, Path, bytes]]:
    """Every token checked, named, placed and serialised (by ``serialize``, the token file's ``to_bytes``)
    before anything is written: a refusal writes nothing."""
    out: list[tuple[Token, Path, bytes]] = []
    seen: dict[str, str] = {}
    for i, tok in enumerate(tokens):
        own = check_exportable(tok, target, base)
        name = name_for(tok, template, i)
        what = tok.path or tok.short_id
        if name in seen:
            raise BadInput(f"{what} and {seen[name]} would both be named {name!r} (use --name with {{id}} or {{i}})")
        seen[name] = what
        path = dest / f"{name}{SUFFIX}"
        safety.check_new_path([path], overwrite)
        tok = exported(tok, target, name, dtype, own)
        out.append((tok, path, serialize(tok)))
    return out


def write(jobs: list[tuple[Token, Path, bytes]], overwrite: bool) -> list[str]:
    """Write planned exports (atomically; without ``overwrite`` a name taken meanwhile is refused)."""
    written = []
    for _, path, data in jobs:
        safety.atomic_write(path, data, overwrite)
        written.append(str(path))
    return written

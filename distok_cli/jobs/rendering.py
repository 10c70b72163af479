"""Render jobs: which (token, prompt, seed) to draw, where the PNG goes, and how work is split.

Kept apart from the command so that training (estimation task), ``estimate`` and ``demo`` reuse it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput
from distok_cli.files.recipes import MAX_SEED
from distok_cli.files.safety import atomic_write, check_new_path, check_target
from distok_cli.files.tokenfile import Token
from distok_cli.progress import Progress, log


@dataclass(frozen=True)
class Job:
    index: int
    token: Token
    prompt: str
    seed: int
    out: Path | None  # None: rendered only as a batch-mate of another job (render --from), not written


#: Most images one command renders (tokens × prompts × seeds), and the largest seed (torch's generator).
MAX_IMAGES = 10_000


def parse_seeds(text: str) -> list[int]:
    """``0-3,7`` → [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise BadInput(f"--seeds: {part!r} is not a seed or a range like 0-7")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a or b - a > 10000:
            raise BadInput(f"--seeds: bad range {part!r}")
        seeds.extend(range(a, b + 1))
        if b > MAX_SEED:
            raise BadInput(f"--seeds: {b} is larger than the largest seed, {MAX_SEED}")
        if len(seeds) > MAX_IMAGES:
            break
    if len(set(seeds)) != len(seeds):
        raise BadInput("--seeds lists a seed twice")
    return seeds


def check_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise BadInput(f"--seed must be between 0 and {MAX_SEED}")
    return seed


def renderable_recipes() -> list[str]:
    """Recipes whose tokens come from their renderer's own text encoder (so they can be rendered)."""
    from distok_cli.files import recipes

    names = []
    for name in recipes.available():
        try:
            if not recipes.load(name).text_encoder:
                names.append(name)
        except BadInput:
            continue
    return names


_COUNT = {2: "two", 3: "three", 4: "four"}


def recipe_for_tokens(given: str | None, tokens: list[Any]) -> str:
    """The recipe to render/estimate ``tokens`` with: ``given``, else the one their model was trained with
    (when all agree and it is a known recipe), else the default recipe of the backend whose named parts they
    have, else ``tiny``."""
    from distok_cli.backends import registry
    from distok_cli.files import recipes

    if given:
        return given
    recorded = {t.model.get("recipe") for t in tokens if getattr(t, "model", None) and t.model.get("recipe")}
    if len(recorded) == 1:
        name = next(iter(recorded))
        if name in recipes.available():
            log.info(f"using recipe {name} (recorded in the token; --recipe chooses another)")
            return name
    layouts = {tuple(n for n, _ in getattr(t, "layout", ())) for t in tokens}
    backend = registry.for_parts(next(iter(layouts))) if len(layouts) == 1 else None
    if tokens and backend is not None and backend.default_recipe:  # e.g. a community embedding with parts
        n = len(backend.parts)
        log.info(
            f"using recipe {backend.default_recipe} (the tokens have {backend.title}'s {_COUNT.get(n, n)} parts; "
            "--recipe chooses another)"
        )
        return backend.default_recipe
    return "tiny"


def check_renderable(tokens: list[Token], cfg: Any = None) -> None:
    """Refuse, before any model loads, a token that no renderer can read (e.g. a 384-d MiniLM token), or
    (with the recipe ``cfg``) one whose parts are not those of the recipe's renderer."""
    from distok_cli.backends import registry
    from distok_cli.files.space import describe_layout

    for t in tokens:
        if not t.layout and not registry.renders((), t.dim):
            space = f"{t.space.encoder}'s {t.dim}-d token space" if t.space else f"a {t.dim}-d token space"
            widths = "/".join(str(w) for w in registry.single_vector_widths())
            raise BadInput(
                f"{t.path or t.short_id} is a token of {space}; no renderer reads it (rendering needs a "
                f"{widths}-d CLIP ViT-L/14 token or a token with parts: train with one of the recipes {', '.join(renderable_recipes())}, "
                "e.g. `distok train -r tiny -o runs/tiny`, and encode or sample with that run)"
            )
        if cfg is not None:
            want = registry.parts_of(cfg.render.backend)
            if tuple(n for n, _ in t.layout) != want:
                shown = describe_layout(t.layout, t.dim)
                expects = " + ".join(want) if want else "one vector"
                raise BadInput(
                    f"{t.path or t.short_id} has {shown}; the recipe {cfg.name} renders with {cfg.render.backend}, "
                    f"which takes {expects} (give --recipe the recipe the token was made with)"
                )


def check_prompts_fit(cfg: Any, prompts: list[str]) -> None:
    """Every prompt keeps its token inside the renderer's text context (77 for CLIP), checked with the
    tokenizers alone, before any model weights load."""
    from transformers import CLIPTokenizer

    from distok_cli.backends.loading import from_pretrained
    from distok_cli.backends.registry import tokenizer_folders
    from distok_cli.backends.textside import PLACEHOLDERS, TextSide

    for ref, sub in tokenizer_folders(cfg.render):
        tok = from_pretrained(CLIPTokenizer, ref, subfolder=sub)
        tok.add_tokens(list(PLACEHOLDERS))
        pid = tok.convert_tokens_to_ids(PLACEHOLDERS[0])
        ids = tok(
            [TextSide.fill(p) for p in prompts], padding="max_length", max_length=tok.model_max_length, truncation=True
        ).input_ids
        for row, prompt in zip(ids, prompts):
            if pid not in row:
                raise BadInput(f"prompt {prompt!r} is too long: the token falls past the text encoder's context")


def slug(prompt: str, limit: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", prompt.replace("<>", "tok").lower()).strip("-")
    return s[:limit].rstrip("-") or "prompt"


def token_names(tokens: list[Token]) -> list[str]:
    stems = [Path(t.path).stem if t.path else t.short_id for t in tokens]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [f"{s}-{t.short_id[:8]}" if seen[s] > 1 else s for s, t in zip(stems, tokens)]


def plan(tokens: list[Token], prompts: list[str], seeds: list[int], out_dir: Path, overwrite: bool) -> list[Job]:
    """Every (token, prompt, seed), with predictable names; refuses to overwrite unless asked."""
    tokens = list({t.id: t for t in reversed(tokens)}.values())[::-1]  # the same token twice renders once
    if len(tokens) * len(prompts) * len(seeds) > MAX_IMAGES:
        raise BadInput(
            f"{len(tokens)} tokens × {len(prompts)} prompts × {len(seeds)} seeds is more than {MAX_IMAGES} images: "
            "split the work into several commands"
        )
    check_target(out_dir, folder=True)
    jobs: list[Job] = []
    for t, name in zip(tokens, token_names(tokens)):
        for p in prompts:
            for s in seeds:
                jobs.append(Job(len(jobs), t, p, s, out_dir / f"{name}_{slug(p)}_{s}.png"))
    check_new_path([j.out for j in jobs if j.out is not None], overwrite)
    return jobs


def process_state() -> Any:
    """accelerate's ``PartialState`` when launched with several processes (torchrun/accelerate), else None."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # cpu=True is needed on CUDA-less machines: without it torchrun's ranks are ignored.
    return PartialState(cpu=not torch.cuda.is_available())


def batches(jobs: list[Job], size: int) -> list[list[Job]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def run(jobs: list[Job], renderer: Any, settings: Any, recipe_name: str, progress: Progress | None = None) -> list[str]:
    """Render and write each job's PNG (atomically). Returns the written paths."""
    import torch

    from distok_cli.files.pngrecord import a1111_parameters, png_bytes

    written: list[str] = []
    full = min(settings.batch_size, len(jobs))
    for batch in batches(jobs, settings.batch_size):
        for j in batch:
            renderer.text.check_token(j.token)
        # A compiled UNet has static shapes: fill a short last batch with copies of its last job rather
        # than compile a second shape. Each image has its own generator, so the copies change nothing but
        # float rounding, as any change of batch size does.
        padded = batch + [batch[-1]] * (full - len(batch) if renderer.compiled else 0)
        vecs = torch.stack([torch.as_tensor(j.token.vector, dtype=torch.float32) for j in padded])
        prompts = [j.prompt for j in padded]
        seeds = [j.seed for j in padded]
        images = renderer.render(vecs, prompts, seeds, settings, paths=[j.token.path for j in padded])
        # An image's pixels depend on its batch-mates through float rounding (BLAS picks kernels by batch
        # size), so the record lists the whole batch: render --from renders it again and keeps this image.
        items = [{"token": _token_ref(j.token), "prompt": j.prompt, "seed": j.seed} for j in padded]
        for i, (j, img) in enumerate(zip(batch, images)):
            if j.out is None:
                continue
            meta = {
                "token": _token_ref(j.token),
                "prompt": j.prompt,
                "seed": j.seed,
                "backend": renderer.backend,
                "render": renderer.cfg.model_dump(),
                "settings": dataclasses.asdict(settings),
                "recipe": recipe_name,
                "models": renderer.models,
                "dtype": str(renderer.dtype).replace("torch.", ""),
            }
            if len(items) > 1:
                meta["batch"] = {"index": i, "items": items}
            params = a1111_parameters(j.prompt, j.seed, settings, renderer.models, j.token.id)
            atomic_write(j.out, png_bytes(img, params, meta))
            written.append(str(j.out))
        if progress is not None:
            progress(len(batch))
    return written


def _token_ref(token: Token) -> dict[str, Any]:
    return {"id": token.id, "path": str(Path(token.path).resolve()) if token.path else None}


def replay_jobs(meta: dict[str, Any], out: Path) -> tuple[list[Job], int]:
    """``render --from``: the jobs of the batch a PNG record describes (only the recorded image is written,
    to ``out``) and the batch size to render them with. A record without ``batch`` was rendered alone."""
    from distok_cli.files import tokenfile

    batch = meta.get("batch") or {
        "index": 0,
        "items": [{"token": meta["token"], "prompt": meta["prompt"], "seed": meta["seed"]}],
    }
    if not 0 <= batch["index"] < len(batch["items"]) or batch["items"][batch["index"]]["token"] != meta["token"]:
        raise BadInput("the PNG record's batch does not hold its own image")
    loaded: dict[str, Token] = {}
    jobs = []
    for i, item in enumerate(batch["items"]):
        ref = item["token"]
        if not ref["path"]:
            raise BadInput("a token of the image's batch was not a file, so the batch cannot be rendered again")
        if ref["id"] not in loaded:
            tok = tokenfile.load(ref["path"])
            if tok.id != ref["id"]:
                raise BadInput(f"{ref['path']} changed since the image was rendered (content id differs)")
            loaded[ref["id"]] = tok
        jobs.append(
            Job(
                i,
                loaded[ref["id"]],
                item["prompt"],
                check_seed(int(item["seed"])),
                out if i == batch["index"] else None,
            )
        )
    return jobs, len(jobs)


def write_grid(jobs: list[Job], path: Path) -> str:
    """A labelled contact sheet of rendered jobs: one row per token, one column per prompt (first seed)."""
    import io

    from PIL import Image

    from distok_cli.plots import contact_sheet

    tokens = list({j.token.id: j.token for j in jobs}.values())
    prompts = list(dict.fromkeys(j.prompt for j in jobs))
    first: dict[tuple[str, str], Path] = {}
    for j in jobs:
        first.setdefault((j.token.id, j.prompt), j.out)
    buf = io.BytesIO()
    ordered = sweep_order(tokens)
    if ordered is not None:  # one sweep: a strip per prompt in path order (a triangle for a triangle sweep)
        from distok_cli.plots import triangle_sheet

        labels = [sweep_label(t) for t in ordered]
        if ordered[0].source["sweep"]["path"] == "triangle":  # type: ignore[index]
            grid = ordered[0].source["sweep"]["grid"]  # type: ignore[index]
            sheet = triangle_sheet(
                [[Image.open(first[(t.id, p)]) for t in ordered] for p in prompts], labels, grid, prompts
            )
        else:
            sheet = contact_sheet([[Image.open(first[(t.id, p)]) for t in ordered] for p in prompts], prompts, labels)
        sheet.save(buf, format="PNG")
    else:
        rows = [[Image.open(first[(t.id, p)]) for p in prompts] for t in tokens]
        contact_sheet(rows, token_names(tokens), prompts).save(buf, format="PNG")
    atomic_write(path, buf.getvalue())
    return str(path)


def _sweep_key(token: Token) -> str | None:
    rec = (token.source or {}).get("sweep")
    return json.dumps([rec["path"], rec["ends"], rec["count"]], sort_keys=True) if isinstance(rec, dict) else None


def sweep_groups(tokens: list[Token]) -> list[list[Token]]:
    """The sweeps among ``tokens`` (the same path and ends in ``source.sweep``), each in path order, each of
    at least two tokens with distinct indices; in the order their first token comes."""
    groups: dict[str, list[Token]] = {}
    for t in tokens:
        key = _sweep_key(t)
        if key is not None:
            groups.setdefault(key, []).append(t)
    out = []
    for members in groups.values():
        index = [t.source["sweep"]["index"] for t in members]  # type: ignore[index]
        if len(members) >= 2 and len(set(index)) == len(index):
            out.append([t for _, t in sorted(zip(index, members), key=lambda x: x[0])])
    return out


def sweep_order(tokens: list[Token]) -> list[Token] | None:
    """``tokens`` in path order when they are all of one sweep; else None."""
    groups = sweep_groups(tokens)
    return groups[0] if len(groups) == 1 and len(groups[0]) == len(tokens) else None


def sweep_label(token: Token) -> str:
    """Where a sweep token lies: its weights (weights, triangle) or its t (between tokens)."""
    rec = (token.source or {}).get("sweep") or {}
    if rec.get("path") in ("weights", "triangle") and isinstance((token.source or {}).get("distribution"), dict):
        from distok_cli.files import distributions as dists

        return " ".join(f"{c} {w:.2f}" for c, w in dists.top(token.source["distribution"], 3))  # type: ignore[index]
    return f"t {rec.get('t', 0):.2f}"

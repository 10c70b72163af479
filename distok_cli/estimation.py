"""Estimate class distributions of images and tokens; compare them with a token's source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import distributions as dists
from . import tokenfile
from .errors import BadInput
from .recipes import Recipe

TOKEN_SUFFIXES = (".distok", ".safetensors")


def parse_classes(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    if not text.strip() or any(not c for c in names):
        raise BadInput(f"--classes {text!r} has an empty class name")
    if len(set(names)) != len(names):
        raise BadInput("--classes lists a class twice")
    if len(names) < 2:
        raise BadInput("--classes needs at least two classes")
    return names


def _open_image(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except (OSError, UnidentifiedImageError, ValueError):
        raise BadInput(f"{path}: not a readable image") from None


def divergences(source: dict[str, float] | None, estimate: dict[str, float]) -> tuple[float | None, float | None]:
    if source is None:
        return None, None
    return dists.kl(source, estimate), dists.js(source, estimate)


def summary(path: str, kind: str, dist: dict[str, float], est: Any, **extra: Any) -> dict[str, Any]:
    return {
        "path": path,
        "kind": kind,
        "estimator": est.name,
        "distribution": dist,
        "top": [[c, p] for c, p in dists.top(dist, 3)],
        **extra,
    }


def estimate_token(
    token: tokenfile.Token, classes: list[str], renderer: Any, estimator: Any, settings: Any, prompt: str, seeds: list[int]
) -> dict[str, float]:
    """Render the token once per seed in ``prompt`` and average the estimator's distributions."""
    import torch

    from .backends.estimate import mean_distribution

    if not token.plain:
        renderer.text.check_space(token.space, token.path or token.short_id)
    rows = []
    for i in range(0, len(seeds), settings.batch_size):
        chunk = seeds[i : i + settings.batch_size]
        vecs = torch.as_tensor(token.vector, dtype=torch.float32)[None].repeat(len(chunk), 1)
        if renderer.backend == "sd15":
            images = renderer.render(vecs, [prompt] * len(chunk), chunk, settings, paths=[token.path] * len(chunk))
        else:
            images = renderer.render(vecs, [prompt] * len(chunk), chunk, settings)
        rows.append(estimator.distributions(images, classes))
    return mean_distribution(torch.cat(rows), classes)


def estimate_paths(
    paths: list[str], cfg: Recipe, classes: list[str], *, images: int | None, prompt: str | None, seed: int,
    write: bool, device: str, dtype: str, out: Any,
) -> list[dict[str, Any]]:
    from .rendering import check_prompt

    prompt = check_prompt(prompt or cfg.estimator.prompt)
    n = images or cfg.estimator.images
    inputs: list[tuple[str, Any]] = []
    for p in paths:  # validate everything before loading any model
        if p.endswith(TOKEN_SUFFIXES):
            tok = tokenfile.load(p)
            src = _source(tok)
            if src is not None:
                unknown = [c for c in src if c not in classes]
                if unknown:
                    raise BadInput(
                        f"{p}: source class {unknown[0]!r} is not among the estimate's classes"
                        f"{dists.suggest(unknown[0], classes)} (pass --classes)"
                    )
            if write and tok.plain:
                raise BadInput(f"{p}: a plain textual-inversion file has no distok metadata to write into")
            inputs.append(("token", tok))
        else:
            if write:
                raise BadInput(f"{p}: --write stores estimates in token files, not images")
            inputs.append(("image", _open_image(p)))

    from .backends.estimate import make_estimator, mean_distribution

    out.notice(f"loading estimator {cfg.estimator.model}")
    est = make_estimator(cfg.estimator, device, dtype)
    renderer = settings = None
    if any(kind == "token" for kind, _ in inputs):
        from .backends.render import Settings, make_renderer

        out.notice(f"loading {cfg.render.backend} models to render tokens")
        renderer = make_renderer(cfg.render, device, dtype)
        settings = Settings.from_config(cfg.render)
    seeds = list(range(seed, seed + n))
    results = []
    with out.progress("estimating", len(inputs)) as task:
        for (kind, item), path in zip(inputs, paths):
            if kind == "image":
                dist = mean_distribution(est.distributions([item], classes), classes)
                results.append(summary(path, "image", dist, est))
            else:
                dist = estimate_token(item, classes, renderer, est, settings, prompt, seeds)
                kl, js = divergences(_source(item), dist)
                results.append(summary(path, "token", dist, est, kl=kl, js=js, prompt=prompt, seeds=seeds))
                if write:
                    record = {
                        **est.describe(), "distribution": dist, "prompts": [prompt], "seeds": seeds, "kl": kl, "js": js,
                    }
                    tokenfile.save(item.with_estimate(record), item.path)
            task.advance()
    return results


def _source(token: tokenfile.Token) -> dict[str, float] | None:
    if token.source and isinstance(token.source.get("distribution"), dict):
        return token.source["distribution"]
    return None


def result_view(r: dict[str, Any]) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    from .report import bars

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", justify="right")
    grid.add_column()
    grid.add_row("estimator", r["estimator"] + (f" ({len(r['seeds'])} renders: {r['prompt']})" if r.get("seeds") else ""))
    grid.add_row("", bars(r["distribution"]))
    if r.get("kl") is not None:
        grid.add_row("vs source", f"KL {r['kl']:.4f}  JS {r['js']:.4f}")
    return Panel(grid, title=str(Path(r["path"])), title_align="left")

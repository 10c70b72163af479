"""Estimate class distributions of images and tokens; compare them with a token's source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput, DistokError
from distok_cli.files import distributions as dists
from distok_cli.files import tokenfile
from distok_cli.files.recipes import IMAGE_ESTIMATORS, Recipe
from distok_cli.files.summary import source_distribution
from distok_cli.progress import Progress, log


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


def estimate_token(token: tokenfile.Token, estimator: Any, seeds: list[int]) -> dict[str, float]:
    """The estimator's class distribution of ``token``, averaged over ``seeds`` (one render per seed)."""
    import torch

    from distok_cli.backends.blip import mean_distribution

    estimator.text.check_token(token)
    vecs = torch.as_tensor(token.vector, dtype=torch.float32)[None].repeat(len(seeds), 1)
    probs, _ = estimator(vecs, seeds)
    return mean_distribution(probs, estimator.classes)


def estimate_record(token: tokenfile.Token, estimator: Any, seeds: list[int]) -> dict[str, Any]:
    """What a token file stores as its estimate: the estimator's description, the distribution, the seeds,
    and KL/JS from the token's source distribution (None without one)."""
    dist = estimate_token(token, estimator, seeds)
    kl, js = divergences(source_distribution(token), dist)
    return {**estimator.describe(), "distribution": dist, "seeds": seeds, "kl": kl, "js": js}


def estimate_paths(
    paths: list[str],
    cfg: Recipe,
    classes: list[str],
    *,
    images: int | None,
    prompt: str | None,
    seed: int,
    write: bool,
    device: str,
    dtype: str,
    kind: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Estimate every path (token files and images), checking them all before any model loads; with
    ``write``, store each token's estimate in its file. One progress unit per path."""

    from distok_cli.limits import check_prompt

    prompt = check_prompt(prompt or cfg.estimator.prompt)
    kind = kind or cfg.estimator.kind
    cfg = cfg.replace(
        classes=list(classes), estimator=cfg.estimator.model_copy(update={"prompt": prompt, "kind": kind})
    )
    n = images or cfg.estimator.images
    inputs: list[tuple[str, Any]] = []
    for p in paths:  # validate everything before loading any model
        if p.endswith(tokenfile.TOKEN_SUFFIXES):
            tok = tokenfile.load(p)
            src = source_distribution(tok)
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
            if kind not in IMAGE_ESTIMATORS:
                raise BadInput(
                    f"{p}: images are estimated with blip-itm or blip-vqa; the {kind} estimator reads tokens"
                )
            inputs.append(("image", _open_image(p)))

    token_est = blip = None
    if any(k == "token" for k, _ in inputs):
        from distok_cli.backends.token_estimators import make_token_estimator

        token_est = make_token_estimator(cfg, device, dtype)
        blip = getattr(token_est, "blip", None)
    if blip is None and any(k == "image" for k, _ in inputs):
        from distok_cli.backends.blip import make_estimator

        log.info(f"loading estimator {cfg.estimator.model}")
        blip = make_estimator(cfg.estimator, device, dtype)
    from distok_cli.backends.blip import mean_distribution

    seeds = list(range(seed, seed + (n if kind != "text" else 1)))
    results = []
    for (k, item), path in zip(inputs, paths):
        if k == "image":
            dist = mean_distribution(blip.distributions([item], classes), classes)
            results.append(summary(path, "image", dist, blip))
        else:
            record = estimate_record(item, token_est, seeds)
            results.append(
                summary(
                    path,
                    "token",
                    record["distribution"],
                    token_est,
                    kl=record["kl"],
                    js=record["js"],
                    prompt=prompt,
                    seeds=seeds,
                    source=source_distribution(item),
                )
            )
            if write:
                tokenfile.update(item.path, _with_estimate(item, record))
        if progress is not None:
            progress(1)
    return results


def _with_estimate(estimated: Any, record: dict[str, Any]) -> Any:
    """For ``tokenfile.update``: the file as it is now, with the estimate, if it is still the estimated token."""

    def change(current: Any) -> Any:
        if current.id != estimated.id:
            raise DistokError(
                f"{estimated.path} was rewritten by another process while it was estimated (another "
                "vector); its estimate was not written: estimate it again"
            )
        return current.with_estimate(record)

    return change


def write_plot(results: list[dict[str, Any]], path: Path) -> str:
    """Bars of each estimate beside its token's source distribution (when it has one)."""
    from distok_cli.files.safety import atomic_write
    from distok_cli.plots import bar_pairs_png

    panels = []
    for r in results:
        title = f"{Path(r['path']).name}" + (f": KL {r['kl']:.3f}" if r.get("kl") is not None else "")
        panels.append((title, r.get("source") or {}, r["distribution"]))
    atomic_write(path, bar_pairs_png(panels, ("source", "estimate")))
    return str(path)

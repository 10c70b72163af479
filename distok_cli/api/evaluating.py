"""``estimate`` and ``evaluate``: what ``distok estimate`` and ``distok eval`` do, from Python."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput
from distok_cli.progress import Bar, silent


def check_estimator(name: str | None) -> str | None:
    """``name`` if it is an estimator kind (None: the recipe's); else the one-line refusal."""
    if name is None:
        return None
    from distok_cli.files.recipes import ESTIMATOR_KINDS  # pydantic: only when a name is given

    if name and name not in ESTIMATOR_KINDS:
        raise BadInput(f"--estimator must be {', '.join(ESTIMATOR_KINDS[:-1])} or {ESTIMATOR_KINDS[-1]}, got {name!r}")
    return name


def estimate(
    paths: Sequence[str | os.PathLike[str]],
    *,
    recipe: str | None = None,
    classes: str | None = None,
    images: int | None = None,
    prompt: str | None = None,
    seed: int = 0,
    write: bool = False,
    estimator: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    dtype: str = "auto",
    plot: str | os.PathLike[str] | None = None,
    bar: Bar | None = None,
) -> list[dict[str, Any]]:
    """The class distribution of each image (BLIP) or token (``estimator``: rendered and read, or read from
    the text side), with KL and JS to a token's source; ``write`` stores it in the token file, ``plot``
    writes the distributions as a bar chart. ``classes``: comma-separated (default: the recipe's)."""
    from distok_cli.files import recipes, tokenfile
    from distok_cli.files.safety import check_target
    from distok_cli.jobs import estimation, rendering
    from distok_cli.progress import log

    check_estimator(estimator)
    if plot is not None:
        check_target(plot, what="--plot")
    paths = [str(p) for p in paths]
    if recipe is None:
        tokens = [tokenfile.load(p) for p in paths if p.endswith(tokenfile.TOKEN_SUFFIXES)]
        recipe = rendering.recipe_for_tokens(None, tokens)
    cfg = recipes.load(recipe, list(overrides))
    class_list = estimation.parse_classes(classes) if classes is not None else cfg.classes
    where = recipes.device_and_dtype(cfg, device, dtype)
    with (bar or silent)("estimating", len(paths)) as advance:
        results = estimation.estimate_paths(
            paths,
            cfg,
            class_list,
            images=images,
            prompt=prompt,
            seed=seed,
            write=write,
            device=where[0],
            dtype=where[1],
            kind=estimator,
            progress=advance,
        )
    if plot is not None:
        log.info(f"wrote {estimation.write_plot(results, Path(plot))}")
    return results


def evaluate(
    run: str | os.PathLike[str],
    *,
    estimator: str | None = None,
    distributions: str | os.PathLike[str] | None = None,
    styles: str = "default",
    free_token: bool = False,
    refine: int = 0,
    metrics: str | Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    output: str | os.PathLike[str] | None = None,
    device: str = "auto",
    dtype: str = "auto",
    bar: Bar | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The paper's consistency metric for the run folder ``run`` (KL(input ‖ estimate) by arity, JS, top-1,
    beside the raw mix), in the training prompt and in other styles (``"default"``: the 6 held-out ones; a
    JSON file; ``"none"``), refined tokens beside with ``refine``, and with ``metrics`` (``"clipscore,pickscore"``:
    any of clipscore, pickscore, vqascore, imagereward, blip-kl) the image metrics of the renders of both
    arms; writes eval.md, eval.json and eval.png into ``output`` (default ``RUN/eval-KIND``). Returns the
    report and the paths written."""
    from distok_cli.backends.token_estimators import make_token_estimator
    from distok_cli.files import checkpoint, recipes
    from distok_cli.method import evaluation

    run = Path(run)
    check_estimator(estimator)
    ckpt = checkpoint.load(run)
    if not (run / "recipe.yaml").is_file():
        raise BadInput(f"{run}: no recipe.yaml (eval needs a run folder made by `distok train`)")
    cfg = recipes.load(str(run / "recipe.yaml"), list(overrides))
    if list(cfg.classes) != ckpt.classes:
        raise BadInput(f"{run}: recipe classes differ from the checkpoint's")
    kind = estimator or cfg.estimator.kind
    if free_token and kind != "text":
        raise BadInput("--free-token needs the text estimator (--estimator text): rendering is not differentiable")
    if refine and kind != "text":
        raise BadInput("--refine is scored with the text estimator (--estimator text)")
    style_list = (
        None
        if styles == "none"
        else evaluation.default_styles()
        if styles == "default"
        else evaluation.read_styles(Path(styles))
    )
    wanted: list[str] = []
    if metrics:
        from distok_cli.backends.metrics import check_metrics, needs
        from distok_cli.files.recipes import IMAGE_ESTIMATORS

        wanted = check_metrics(metrics if isinstance(metrics, str) else ",".join(metrics))
        if kind not in IMAGE_ESTIMATORS:
            raise BadInput(
                f"--metric scores renders: it needs an image estimator (--estimator blip-itm or blip-vqa), not {kind}"
            )
        for name in wanted:
            needs(name)  # a missing package is one line before anything loads
    if refine and not ckpt.config.get("styles"):
        raise BadInput(
            f"{run}: the model was not trained with distok's objective (no styles); --refine needs one that was"
        )
    if distributions is not None:
        set_name, items = evaluation.read_eval_set(Path(distributions), ckpt.classes)
    else:
        set_name, items = evaluation.eval_set_for(ckpt.classes)
    est = make_token_estimator(cfg, *recipes.device_and_dtype(cfg, device, dtype), kind=estimator)
    if not ckpt.space.compatible(est.text.space):
        raise BadInput(f"{run}: the model was trained for {ckpt.space.encoder}, not {est.text.space.encoder}")
    images = 1 if kind == "text" else cfg.estimator.images
    judge = kind == "text" and est.judge() is not None  # the text estimator's second readout costs as much again
    total = evaluation.work(
        len(items),
        len(ckpt.classes),
        free_token,
        calibrate=not cfg.eval.temperature,
        styles=len(style_list or []),
        refine=refine,
        judge=judge,
    )
    with (bar or silent)("evaluating", total) as advance:
        report = evaluation.evaluate(
            ckpt,
            est,
            items,
            set_name,
            temperature=cfg.eval.temperature or None,
            calibrate_to=cfg.eval.calibrate_to,
            images=images,
            free_token=free_token,
            progress=advance,
            styles=style_list,
            refine=refine,
            judge=judge,
        )
    if wanted:
        from distok_cli.backends.metrics import label, make_scorers

        scorers = make_scorers(wanted, cfg.eval, recipes.device_and_dtype(cfg, device, dtype)[0])
        first_clip = cfg.eval.clipscore_models[0]
        with (bar or silent)("image metrics", len(evaluation.METRIC_ARMS) * len(items)) as advance:
            report["metrics"] = evaluation.image_metrics(
                ckpt, est, items, [(label(s, first_clip), s) for s in scorers], images, advance
            )
        report["metrics_blip_kl"] = "blip-kl" in wanted
    folder = Path(output) if output is not None else run / f"eval-{kind}"
    return report, evaluation.write_report(report, folder, f"distok eval: {run}")


def evaluation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The JSON ``distok eval --json`` prints for a report."""
    from distok_cli.method import evaluation

    return evaluation.summary(report)

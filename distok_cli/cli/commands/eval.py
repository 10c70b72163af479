"""`distok eval`: distribution consistency of a trained model against the no-model baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import (
    DeviceOpt,
    DtypeOpt,
    EstimatorOpt,
    JsonOpt,
    QuietOpt,
    SetOpt,
    check_estimator,
    output_option,
)


def eval_(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="A run folder made by `distok train`.")],
    estimator: EstimatorOpt = None,
    distributions: Annotated[
        Path | None,
        typer.Option(
            "--distributions", help="A JSON list of {class: weight} objects to evaluate (default: the fixed set of 30)."
        ),
    ] = None,
    free_token: Annotated[
        bool,
        typer.Option(
            "--free-token",
            help="Also optimise one free token per distribution (the estimator's floor; text estimator, slower).",
        ),
    ] = False,
    styles: Annotated[
        str,
        typer.Option(
            "--styles",
            metavar="FILE|default|none",
            help='Also score in these prompt styles (a JSON list such as ["a watercolor of a"]); default: the 6 held-out styles of recipes/eval/styles-v1.json.',
        ),
    ] = "default",
    refine: Annotated[
        int,
        typer.Option(
            "--refine",
            min=0,
            max=10_000,
            metavar="N",
            help="Also score the tokens after N steps of test-time refinement (as `encode --refine N`).",
        ),
    ] = 0,
    output: Annotated[Path | None, output_option("Report folder (default: RUN/eval-ESTIMATOR).")] = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """KL(input ‖ estimate) by arity, its two parts, JS and top-1, beside the raw-mix baseline; writes eval.md/json/png."""
    from distok_cli.backends.token_estimators import make_token_estimator
    from distok_cli.cli.output import Output
    from distok_cli.errors import BadInput
    from distok_cli.files import checkpoint, recipes
    from distok_cli.method import evaluation

    out = Output(quiet)
    check_estimator(estimator)
    ckpt = checkpoint.load(run)
    if not (run / "recipe.yaml").is_file():
        raise BadInput(f"{run}: no recipe.yaml (eval needs a run folder made by `distok train`)")
    cfg = recipes.load(str(run / "recipe.yaml"), list(set_ or []))
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
    if refine and not ckpt.config.get("styles"):
        raise BadInput(
            f"{run}: the model was not trained with distok's objective (no styles); --refine needs one that was"
        )
    if distributions is not None:
        set_name, items = evaluation.read_eval_set(distributions, ckpt.classes)
    else:
        set_name, items = evaluation.eval_set_for(ckpt.classes)
    est = make_token_estimator(cfg, *recipes.placement(cfg, device, dtype), kind=estimator)
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
    with out.progress("evaluating", total) as task:
        report = evaluation.evaluate(
            ckpt,
            est,
            items,
            set_name,
            temperature=cfg.eval.temperature or None,
            calibrate_to=cfg.eval.calibrate_to,
            images=images,
            free_token=free_token,
            progress=task.advance,
            styles=style_list,
            refine=refine,
            judge=judge,
        )
    folder = output or run / f"eval-{kind}"
    written = evaluation.write_report(report, folder, f"distok eval: {run}")
    if json_:
        out.data(json.dumps(evaluation.summary(report), sort_keys=True))
    else:
        b = report["baselines"]["raw_mix"]
        out.log(
            f"KL {report['kl']:.4f} (raw mix {b['kl']:.4f})  JS {report['js']:.4f}  top-1 {report['top1']:.3f} "
            f"(raw mix {b['top1']:.3f})  T {report['temperature']:.4g}  ({report['estimator']}, {report['eval_set']})"
        )
        if "held_out" in report:
            h = report["held_out"]
            out.log(
                f"held-out styles ({len(h['styles'])}): KL {h['distok']['kl']:.4f} (raw mix {h['raw_mix']['kl']:.4f}, "
                f"{100 * -h['kl_reduction']:+.0f} %)"
                + (f", refined {h['refined']['kl']:.4f}" if "refined" in h else "")
            )
        if "judge" in report:
            j = report["judge"].get("held_out") or report["judge"]["training_style"]
            out.log(
                f"judge ({report['judge']['estimator']}): KL {j['distok']['kl']:.4f} (raw mix {j['raw_mix']['kl']:.4f})"
                + (f", refined {j['refined']['kl']:.4f}" if "refined" in j else "")
            )
        for p in written:
            out.data(p)

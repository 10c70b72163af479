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
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME[,NAME]",
            help="Also score the renders of both arms: clipscore, pickscore, vqascore, imagereward, blip-kl "
            "(needs an image estimator; models: the recipe's eval section).",
        ),
    ] = None,
    output: Annotated[Path | None, output_option("Report folder (default: RUN/eval-ESTIMATOR).")] = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """KL(input ‖ estimate) by arity, its two parts, JS and top-1, beside the raw-mix baseline; writes eval.md/json/png."""
    from distok_cli import api
    from distok_cli.cli.output import Output

    out = Output(quiet)
    report, written = api.evaluate(
        run,
        estimator=estimator,
        distributions=distributions,
        styles=styles,
        free_token=free_token,
        refine=refine,
        metrics=metric,
        overrides=list(set_ or []),
        output=output,
        device=device,
        dtype=dtype,
        bar=out.bar,
    )
    if json_:
        out.data(json.dumps(api.evaluation_summary(report), sort_keys=True))
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
        if "metrics" in report:
            m = report["metrics"]["arms"]
            out.log(
                "image metrics: "
                + "; ".join(f"{k} {m['distok'][k]:.4f} (raw mix {m['raw_mix'][k]:.4f})" for k in m["distok"])
            )
        for p in written:
            out.data(p)

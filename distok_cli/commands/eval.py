"""`distok eval`: distribution consistency of a trained model (KL, JS, top-1, nearest-class cosine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .._options import DeviceOpt, DtypeOpt, EstimatorOpt, JsonOpt, QuietOpt, SetOpt, check_estimator


def eval_(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="A run folder made by `distok train`.")],
    estimator: EstimatorOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report folder (default: RUN/eval-ESTIMATOR).")] = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """KL(input ‖ estimate) over 30 fixed distributions, plus JS, top-1 and nearest-class cosine; writes eval.md/json/png."""
    from .. import checkpoint, evaluation, recipes
    from .._output import Output
    from ..errors import BadInput
    from ..method.estimators import make_token_estimator

    out = Output(quiet)
    check_estimator(estimator)
    ckpt = checkpoint.load(run)
    if not (run / "recipe.yaml").is_file():
        raise BadInput(f"{run}: no recipe.yaml (eval needs a run folder made by `distok train`)")
    cfg = recipes.load(str(run / "recipe.yaml"), list(set_ or []))
    if list(cfg.classes) != ckpt.classes:
        raise BadInput(f"{run}: recipe classes differ from the checkpoint's")
    est = make_token_estimator(cfg, device, dtype, kind=estimator, out=out)
    if not ckpt.space.compatible(est.text.space):
        raise BadInput(f"{run}: the model was trained for {ckpt.space.encoder}, not {est.text.space.encoder}")
    with out.progress("evaluating", 30) as task:
        report = evaluation.evaluate(ckpt, est, task)
    kind = estimator or cfg.estimator.kind
    folder = output or run / f"eval-{kind}"
    written = evaluation.write_report(report, folder, f"distok eval: {run}")
    if json_:
        out.data(json.dumps({k: v for k, v in report.items() if k != "items"}, sort_keys=True))
    else:
        out.log(f"KL {report['kl']:.4f}  JS {report['js']:.4f}  top-1 {report['top1']:.3f}  "
                f"nearest-class cosine {report['nearest_cosine']:.4f}  ({report['estimator']}, {report['eval_set']})")
        for p in written:
            out.data(p)

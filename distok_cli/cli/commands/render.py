"""`distok render`: tokens + prompts → PNG files (and a contact sheet)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from distok_cli.cli.options import (
    DeviceOpt,
    DtypeOpt,
    OverwriteOpt,
    QuietOpt,
    SetOpt,
    TokenRecipeOpt,
    output_option,
    seed_option,
)
from distok_cli.cli.output import Output, expand_paths
from distok_cli.files.recipes import MIN_PRIOR_STEPS, MIN_SIZE


def render(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="TOKEN... PROMPT...", help="Token files ('-' reads paths from stdin) and prompts with '<>'."
        ),
    ] = None,
    output: Annotated[Path, output_option("Folder for the PNG files.")] = Path("renders"),
    seed: Annotated[int | None, seed_option("One seed for every image.")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="Several seeds: '0-3,7'.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Decoder (or SD) denoising steps.")] = None,
    prior_steps: Annotated[
        int | None,
        typer.Option("--prior-steps", min=MIN_PRIOR_STEPS, help=f"Kandinsky prior steps (at least {MIN_PRIOR_STEPS})."),
    ] = None,
    guidance: Annotated[float | None, typer.Option("--guidance", min=0, help="Guidance scale.")] = None,
    size: Annotated[int | None, typer.Option("--size", min=MIN_SIZE, help="Image width and height in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = None,
    recipe: TokenRecipeOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    offload: Annotated[bool, typer.Option("--offload", help="Keep models on the CPU until needed (low VRAM).")] = False,
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the UNet: the first batch compiles (about a minute on an H100), later ones run faster on CUDA.",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    grid: Annotated[
        bool, typer.Option("--grid", help="Also write a labelled contact sheet (tokens × prompts).")
    ] = False,
    from_: Annotated[Path | None, typer.Option("--from", help="Re-render the image a distok PNG describes.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Render tokens in prompts ("a watercolor of a <>"); print the written PNG paths."""
    from distok_cli.errors import BadInput
    from distok_cli.files import recipes, safety, tokenfile
    from distok_cli.jobs import rendering

    out = Output(quiet)
    if seed is not None and seeds is not None:
        raise BadInput("give --seed or --seeds, not both")
    if from_ is not None:
        if items:
            raise BadInput("--from re-renders one image: give no tokens or prompts with it")
        from distok_cli.files import pngrecord

        meta = pngrecord.read(str(from_))  # checked against the PNG record schema: every key below is there
        token_path, prompt, seed_list = meta["token"]["path"], meta["prompt"], [int(meta["seed"])]
        render_cfg = dict(meta["render"])
        s = meta["settings"]
        steps, prior_steps, guidance, size = s["steps"], s["prior_steps"], s["guidance"], s["size"]
        recipe = meta["recipe"]
        dtype = meta["dtype"]
        if not token_path:
            raise BadInput(f"{from_}: the token was not a file, so it cannot be re-rendered")
        token_list = [tokenfile.load(token_path)]
        if token_list[0].id != meta["token"]["id"]:
            raise BadInput(f"{token_path} changed since {from_} was rendered (content id differs)")
        prompts = [prompt]
        cfg = recipes.override(recipes.with_section(recipes.load(recipe), "render", render_cfg), list(set_ or []))
    else:
        token_args, prompts = rendering.split_args(list(items or []))
        if not token_args:
            raise BadInput("no token files given (pass paths, or '-' to read them from stdin)")
        if not prompts:
            raise BadInput("no prompt given: add one with '<>' where the token goes, e.g. \"a photo of a <>\"")
        token_list = [tokenfile.load(p) for p in expand_paths(token_args)]
        seed_list = rendering.parse_seeds(seeds) if seeds is not None else [rendering.check_seed(seed or 0)]
        cfg = recipes.load(rendering.recipe_for_tokens(recipe, token_list), list(set_ or []))
    rendering.check_renderable(token_list, cfg)

    from distok_cli.backends.pipelines import Settings

    where = recipes.placement(cfg, device, dtype)
    settings = Settings.from_config(
        cfg.render, steps=steps, prior_steps=prior_steps, guidance=guidance, size=size, batch_size=batch_size
    )
    # Everything that can be checked from the tokens, prompts, recipe and flags, before any weights load.
    jobs = rendering.plan(token_list, prompts, seed_list, output, overwrite)
    if from_ is not None:  # the image's whole batch again (same shapes, same rounding); only the image is written
        jobs, size = rendering.replay_jobs(meta, jobs[0].out)
        settings = dataclasses.replace(settings, batch_size=size)
    grid_path = output / "grid.png"
    if grid:
        safety.check_new_path([grid_path], overwrite)
    rendering.check_prompts_fit(cfg, prompts)

    state = rendering.process_state()
    mine = jobs
    if state is not None:
        with state.split_between_processes(jobs) as part:
            mine = list(part)
        out.log(
            f"distok: process {state.process_index}/{state.num_processes} renders {len(mine)} of {len(jobs)} images"
        )

    from distok_cli.backends.registry import make_renderer

    out.notice(f"loading {cfg.render.backend} models ({cfg.name} recipe)")
    renderer = make_renderer(cfg.render, *where, offload, compile=compile_)
    if compile_:
        out.notice(
            "compiling the UNet with torch.compile: the first batch is slow, the rest faster (pays on long CUDA runs)"
        )
    for t in token_list:
        renderer.text.check_token(t)
        if t.plain:
            out.warn(
                f"{t.path}: a plain textual-inversion file names no token space; rendering it with {renderer.text.space.encoder}"
            )
    with out.progress("rendering", len(mine)) as task:
        written = rendering.run(mine, renderer, settings, cfg.name, task.advance)

    if state is not None:
        from accelerate.utils import gather_object

        written = gather_object(written)
        state.wait_for_everyone()
        if not state.is_main_process:
            return
    for path in written:
        out.data(path)
    if grid:
        out.data(rendering.write_grid([j for j in jobs if j.out is not None], grid_path))

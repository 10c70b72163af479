"""The ``distok`` command line: wiring only. Each command lives in ``distok_cli/commands/``."""

from __future__ import annotations

import os
import sys

import typer

from distok_cli import interrupts
from distok_cli.cli.commands import (
    demo,
    diff,
    encode,
    estimate,
    export,
    gallery,
    inspect,
    model,
    render,
    sample,
    sweep,
    train,
)
from distok_cli.cli.commands import eval as eval_cmd
from distok_cli.errors import DistokError

app = typer.Typer(
    name="distok",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the distok version and exit."),
) -> None:
    """Creative tokens from class distributions (DisTok). Data goes to stdout, messages to stderr."""
    if version:
        from distok_cli import __version__

        sys.stdout.write(f"distok {__version__}\n")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        sys.stdout.write(ctx.get_help() + "\n")


app.command("train")(train.train)
app.command("encode")(encode.encode)
app.command("sample")(sample.sample)
app.command("sweep")(sweep.sweep)
app.command("render")(render.render)
app.command("estimate")(estimate.estimate)
app.command("inspect")(inspect.inspect)
app.command("diff")(diff.diff)
app.command("export")(export.export)
app.command("gallery")(gallery.gallery)
app.command("eval")(eval_cmd.eval_)
app.command("demo")(demo.demo)
app.command("model")(model.model)


def _error(message: str) -> None:
    sys.stderr.write(f"distok: error: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; errors become one line on stderr (DISTOK_DEBUG=1: traceback).

    Ctrl-C, SIGTERM and SIGHUP are handled for the whole command (:mod:`distok_cli.interrupts`): each exits
    128 + the signal's number with one line, wherever it lands."""
    with interrupts.handled():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    debug = os.environ.get("DISTOK_DEBUG", "") not in ("", "0")
    try:
        rv = app(args=argv, prog_name="distok", standalone_mode=False)
        interrupts.check()  # a stop whose exception a library swallowed on the way
        return rv if isinstance(rv, int) else 0
    except DistokError as exc:
        if debug:
            raise
        _error(exc.one_line())
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt) as exc:  # the parser turns Ctrl-C into Abort; the signal is its cause
        stop = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__
        return _stopped(interrupts.signal_of(stop if isinstance(stop, KeyboardInterrupt) else KeyboardInterrupt()))
    except typer.TyperException as exc:  # usage errors from the parser: exit 2, one line
        if debug:
            raise
        fmt = getattr(exc, "format_message", None)
        _error(" ".join((fmt() if fmt else str(exc)).split()))
        return int(getattr(exc, "exit_code", 2))
    except BrokenPipeError:
        # `distok sample ... | head -1`: the reader left; say nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:  # a bug or an environment failure: still one line unless debugging
        signum = interrupts.pending()
        if signum is not None:  # a library turned the stop into another exception
            return _stopped(signum)
        if debug:
            raise
        oom = "out of memory" in str(exc).lower()
        hint = " (try a smaller --batch-size or --offload)" if oom else " (set DISTOK_DEBUG=1 for the traceback)"
        _error(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}{hint}")
        return 1


def _stopped(signum: int) -> int:
    _error(interrupts.words(signum))
    return 128 + signum

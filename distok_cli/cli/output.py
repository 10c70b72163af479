"""One place for what goes where: data on stdout, logs and progress on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from distok_cli.errors import BadInput


class Output:
    """Writes data lines to stdout and messages/progress to stderr; ``quiet`` silences the latter."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._err: Any = None
        self._out: Any = None
        # The library's notices (logging "distok", INFO) go to this command's stderr unless -q.
        import logging

        logger = logging.getLogger("distok")
        for h in [h for h in logger.handlers if getattr(h, "distok_cli", False)]:
            logger.removeHandler(h)
        handler = logging.StreamHandler(sys.stderr)
        handler.distok_cli = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("distok: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.propagate = False

    @property
    def err(self) -> Any:
        if self._err is None:
            from rich.console import Console

            self._err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        return self._err

    def show(self, view: Any = None, *, json_data: Any = None) -> None:
        """A rich view (or ``json_data``, pretty-printed) for people, on stdout: what ``inspect``, ``diff`` and
        ``estimate`` print without ``--json``. One console for the command, built on first use."""
        if self._out is None:
            from rich.console import Console

            self._out = Console(highlight=False)
        if json_data is not None:
            self._out.print_json(data=json_data)
        else:
            self._out.print(view)

    def data(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def log(self, message: str) -> None:
        # Plain text needs no rich: importing rich.console is a sizeable share of a light command's start-up.
        if not self.quiet:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    def notice(self, message: str) -> None:
        self.log(f"distok: {message}")

    def warn(self, message: str) -> None:
        """Warnings are shown even with -q: they change what the user gets."""
        sys.stderr.write(f"distok: warning: {message}\n")
        sys.stderr.flush()

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Any]:
        """A rich progress bar on stderr (a no-op advance() under -q)."""
        if self.quiet:
            yield _NullTask()
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.err,
            transient=False,
        ) as prog:
            task_id = prog.add_task(description, total=total, info="")
            yield _Task(prog, task_id)

    @contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Any]:
        """:meth:`progress` as the API's ``bar`` takes it: the context's value is the advance callback."""
        with self.progress(description, total) as task:
            yield task.advance


class _Task:
    def __init__(self, prog: Any, task_id: Any) -> None:
        self.prog, self.task_id = prog, task_id

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if info is None:
            self.prog.advance(self.task_id, n)
        else:
            self.prog.update(self.task_id, advance=n, info=info)


class _NullTask:
    def advance(self, n: int = 1, info: str | None = None) -> None:
        pass


def expand_paths(args: Iterable[str]) -> list[str]:
    """Replace ``-`` with the paths listed on stdin, one per line (blank lines skipped)."""
    out: list[str] = []
    for a in args:
        if a == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise BadInput("'-' reads paths from stdin, but stdin is a terminal")
            out.extend(line.strip() for line in sys.stdin.read().splitlines() if line.strip())
        else:
            out.append(a)
    if not out:
        raise BadInput("no input files (give paths, or '-' to read them from stdin)")
    return out

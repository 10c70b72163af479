"""Stop signals (Ctrl-C, SIGTERM, SIGHUP) that never land in the middle of an update or a checkpoint.

:func:`handled` installs one handler for SIGINT, SIGTERM and SIGHUP (main thread only). It raises
:class:`~distok_cli.errors.Interrupted` (a ``KeyboardInterrupt`` carrying the signal's number) at once,
except inside a :func:`deferred` block, where the signal is held until the block ends: a training step's
commit (its update, its counter, its RNG mark and its log row) and a checkpoint write happen whole or not
at all.

A signal also stays *pending* until :func:`clear`. Python runs a signal handler between any two bytecodes,
so its exception can surface where library code swallows it (a ``__del__``, a garbage-collector callback,
a C callback that reports and drops errors); :func:`check` raises a pending signal again at the next safe
point, so no stop request is ever lost.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from distok_cli.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "stopped by SIGTERM", signal.SIGHUP: "stopped by SIGHUP"}

_pending: int | None = None
_depth = 0


def _handler(signum: int, frame: object) -> None:
    record(signum)
    if _depth == 0:
        raise Interrupted(signum)


def record(signum: int) -> None:
    """Note a stop signal without raising (the first one is the one reported)."""
    global _pending
    if _pending is None:
        _pending = signum


def install() -> dict[int, object]:
    """Install the handler for the three signals (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _handler) for s in SIGNALS}


def restore(saved: dict[int, object]) -> None:
    for s, handler in saved.items():
        signal.signal(s, handler)  # type: ignore[arg-type]


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """The handler for the block, the previous handlers after it, and no pending signal left over."""
    saved = install()
    try:
        yield
    finally:
        restore(saved)
        clear()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold stop signals until the block ends, then raise the first one (if any). A block that raises
    raises its own exception; the signal stays pending for the code that handles it."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth == 0:
        check()


def check() -> None:
    """Raise the pending stop signal, if any (a safe point)."""
    if _pending is not None and _depth == 0:
        raise Interrupted(_pending)


def pending() -> int | None:
    """The number of the stop signal received and not yet cleared, or None."""
    return _pending


def clear() -> None:
    global _pending
    _pending = None


def signal_of(exc: BaseException) -> int | None:
    """The stop signal behind ``exc``: its own for a KeyboardInterrupt (SIGINT for a plain one), else a
    pending signal whose exception library code turned into another one; None for any other failure."""
    if isinstance(exc, KeyboardInterrupt):
        return getattr(exc, "signum", None) or _pending or signal.SIGINT
    return _pending


def words(signum: int) -> str:
    """How a stop by ``signum`` is said: "interrupted", "stopped by SIGTERM", "stopped by SIGHUP"."""
    return _WORDS.get(signum, f"stopped by signal {signum}")

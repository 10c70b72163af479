"""The ``distok`` console script: stop signals are handled before anything heavy is imported.

Ctrl-C, SIGTERM and SIGHUP give exit 128 + the signal's number and one line wherever they land: while
the command's modules import, while it runs (:func:`distok_cli.cli.app.main`), and after its work is
done (a signal then is still reported, never a traceback or a death by signal). One that arrives while the
interpreter shuts down, after the exit code is final, is ignored: the command has finished.
"""

from __future__ import annotations

import signal
import sys

from distok_cli import interrupts


def run() -> None:
    interrupts.install()
    try:
        from distok_cli.cli import app

        code = app.main()
        for s in interrupts.SIGNALS:  # finished: a stop signal from now on is recorded, not raised
            signal.signal(s, _record)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:  # the reader left (`distok sample | head -1`): main already said nothing
                pass
    except KeyboardInterrupt as exc:  # while the command's modules were importing, or just after it ran
        code = _stopped(interrupts.signal_of(exc) or signal.SIGINT)
    # The exit code is final once a signal recorded so far is taken into account. Python's shutdown would
    # put the default handlers back (a death by signal, not an exit code), so the rest is ignored.
    for s in interrupts.SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    late = interrupts.pending()
    if late is not None and code < 128:
        code = _stopped(late)
    sys.exit(code)


def _record(signum: int, frame: object) -> None:
    interrupts.record(signum)


def _stopped(signum: int) -> int:
    sys.stderr.write(f"distok: error: {interrupts.words(signum)}\n")
    sys.stderr.flush()
    return 128 + signum

"""How the library reports progress and notices without knowing about a screen.

* Progress: functions that do long work take ``progress: Progress | None`` and call it as they go
  (``progress(1)``, or ``progress(1, "loss 0.41")``); the default is silence. The CLI passes a rich
  progress bar's ``advance``. API functions that know their total only once they have looked at the work
  take ``bar: Bar | None`` instead, a factory of progress contexts: ``with bar("rendering", 12) as advance``.
* Notices ("loading the text encoder", "normalised the weights to …") go to ``logging.getLogger("distok")``
  at INFO; the CLI prints them on stderr unless ``-q``. Nothing below the CLI prints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

log = logging.getLogger("distok")


class Progress(Protocol):
    def __call__(self, advance: int = 1, info: str | None = None) -> None: ...


class Bar(Protocol):
    def __call__(self, description: str, total: int | None) -> AbstractContextManager[Progress]: ...


@contextmanager
def silent(description: str, total: int | None) -> Iterator[Progress]:
    """The default :class:`Bar`: nothing shown."""

    def advance(n: int = 1, info: str | None = None) -> None:
        pass

    yield advance

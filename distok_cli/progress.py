"""How the library reports progress and notices without knowing about a screen.

* Progress: functions that do long work take ``progress: Progress | None`` and call it as they go
  (``progress(1)``, or ``progress(1, "loss 0.41")``); the default is silence. The CLI passes a rich
  progress bar's ``advance``.
* Notices ("loading the text encoder", "normalised the weights to …") go to ``logging.getLogger("distok")``
  at INFO; the CLI prints them on stderr unless ``-q``. Nothing below the CLI prints.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("distok")


class Progress(Protocol):
    def __call__(self, advance: int = 1, info: str | None = None) -> None: ...

"""The concept pool: known classes plus concepts discovered by the estimation task.

Known classes are the recipe's vocabulary (their t_i live in the checkpoint). Discovered concepts are
tokens decoded from random latents whose estimated distribution is spread out enough (largest class
probability below τ); each is written to ``RUN/pool/`` as a ``.distok`` file (source kind ``pool``,
with the estimate) and its renders beside it, so the pool survives a restart and can be inspected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli.files import safety, tokenfile
from distok_cli.files.space import TokenSpace
from distok_cli.files.tokenfile import Token

_STEP = re.compile(r"^(\d{7,})-\d{2,}(?:\.distok|_\d+\.png)$")  # a concept's files: STEP-NN.distok, STEP-NN_I.png


@dataclass
class Entry:
    name: str
    vector: np.ndarray
    distribution: dict[str, float]
    step: int
    images: list[str] = field(default_factory=list)


def admit(distribution: dict[str, float], tau: float, tau_min: float = 0.0) -> bool:
    """A concept joins the pool when no class reaches probability τ (it is novel) and, with ``tau_min``,
    when its largest class reaches ``tau_min`` (it is recognisably made of known classes)."""
    top = max(distribution.values())
    return tau_min <= top < tau


class Pool:
    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.entries: list[Entry] = []
        if folder.is_dir():
            for p in sorted(folder.glob("*.distok")):
                t = tokenfile.load(p)
                dist = t.source["distribution"] if t.source else {}
                self.entries.append(
                    Entry(
                        p.stem,
                        t.vector,
                        dist,
                        int(t.source.get("step", 0)) if t.source else 0,
                        sorted(str(x) for x in folder.glob(f"{p.stem}_*.png")),
                    )
                )

    def truncate(self, step: int) -> None:
        """Drop the concepts admitted after ``step``: their entries, and every file named for a later step
        (also one whose entry was never listed, when an interrupt landed between its write and the list)."""
        self.entries = [e for e in self.entries if e.step <= step]
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            admitted = _STEP.match(path.name)
            if admitted and int(admitted.group(1)) > step:
                path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def full(self) -> bool:
        return len(self.entries) >= self.limit

    def add(
        self,
        vector: np.ndarray,
        distribution: dict[str, float],
        step: int,
        z: list[float],
        space: TokenSpace,
        estimate: dict[str, Any],
        images: list[Any] | None = None,
        measured: dict[str, float] | None = None,
    ) -> Entry:
        """Write a concept of ``step``: its token, the ``distribution`` it stands for (the training input) and
        the estimate (whose distribution is ``measured`` where that differs, as for a refined concept)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{step:07d}-{len([e for e in self.entries if e.step == step]):02d}"
        token = Token(
            vector=np.asarray(vector, np.float32),
            space=space,
            source={"kind": "pool", "distribution": distribution, "step": step, "z": z},
            estimate={**estimate, "distribution": measured or distribution},
            title=f"pool-{name}",
        )
        tokenfile.save(token, self.folder / f"{name}.distok")
        paths = []
        for i, img in enumerate(images or []):
            import io

            buf = io.BytesIO()
            img.save(buf, format="PNG")
            path = self.folder / f"{name}_{i}.png"
            safety.atomic_write(path, buf.getvalue())
            paths.append(str(path))
        entry = Entry(name, token.vector, distribution, step, paths)
        self.entries.append(entry)
        return entry

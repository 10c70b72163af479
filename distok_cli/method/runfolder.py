"""A training run's folder on disk, apart from the training itself (:mod:`distok_cli.method.trainer`).

``RUN/`` holds ``recipe.yaml`` (what was trained), ``model.safetensors`` (the checkpoint), ``state.safetensors``
(optimizer and RNG state, for an exact ``--resume``), ``log.jsonl`` (a row every ``log_every`` steps),
``loss.png``, the concept pools ``pool/`` and ``refined/``, and ``.distok-lock`` while a process trains it.
Every file is written atomically; a checkpoint's two files are written inside a block that stop signals
wait for, by the trainer.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from distok_cli.errors import BadInput
from distok_cli.files import recipes as recipes_mod
from distok_cli.files.recipes import Recipe
from distok_cli.files.runlock import LOCK_NAME, RunLock
from distok_cli.files.safety import atomic_write, write_error
from distok_cli.files.tokenfile import safetensors_bytes

STATE_FILE = "state.safetensors"
LOG_FILE = "log.jsonl"


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # --------------------------------------------------------------------------------- start, undo
    def _refuse_used(self) -> None:
        if self.path.exists() and any(p.name != LOCK_NAME for p in self.path.iterdir()):
            raise BadInput(f"{self.path} exists and is not empty (use --resume to continue it, or another -o)")

    def prepare(self, recipe: Recipe, resume: bool, lock: RunLock | None = None) -> bool:
        """Start the folder (its recipe.yaml); returns whether this call created it. With ``lock``, the
        folder's lock is taken first (a second writer is refused at once, naming the holder's pid)."""
        if resume:  # the caller has checked recipe.yaml; a run killed before its first checkpoint restarts at 0
            if lock is not None:
                lock.acquire()
            return False
        self._refuse_used()  # before the lock: no lock file is made in someone else's folder
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            lock.acquire()
            try:
                self._refuse_used()  # again: another process may have got here between the check and the lock
            except BadInput:
                lock.release()
                raise
        atomic_write(self.path / "recipe.yaml", recipes_mod.dump(recipe).encode())
        return created

    def discard(self, created: bool) -> None:
        """Undo :meth:`prepare` when a fresh run fails before its first checkpoint (a model that is not
        cached, say): no half-made run folder is left behind."""
        if (self.path / "model.safetensors").exists():
            return
        (self.path / "recipe.yaml").unlink(missing_ok=True)
        (self.path / LOCK_NAME).unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                self.path.rmdir()

    # ------------------------------------------------------------------------------------ checkpoint
    def has_state(self) -> bool:
        return (self.path / STATE_FILE).is_file()

    def write_checkpoint(self, checkpoint: Any, state: dict[str, Any], meta: dict[str, str]) -> None:
        """``model.safetensors``, then ``state.safetensors`` (numpy arrays in our own deterministic writer:
        safetensors' own orders the metadata differently in every process), then ``loss.png``."""
        self.path.mkdir(parents=True, exist_ok=True)
        checkpoint.save(self.path / "model.safetensors")
        atomic_write(self.path / STATE_FILE, safetensors_bytes(state, meta, keep_dtype=True))
        self.plot(checkpoint.config.get("recipe", ""))

    def read_state(self) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The saved training state's tensors (torch) and metadata; None before the first checkpoint."""
        from safetensors import safe_open

        if not self.has_state():
            return None
        with safe_open(str(self.path / STATE_FILE), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()

    # ------------------------------------------------------------------------------------------ log
    @contextmanager
    def log(self, every: int, last: int) -> Iterator[Any]:
        """A writer of log rows (a dict per step; rows of every ``every``-th step and of step ``last`` are
        kept), with the seconds since it opened. A full disk is one line; the buffered rest is then lost,
        and ``--resume`` rewinds the log to the checkpoint."""
        fh: TextIO = (self.path / LOG_FILE).open("a", encoding="utf-8")
        started = time.perf_counter()

        def write(row: dict[str, Any]) -> None:
            if row["step"] % every == 0 or row["step"] == last:
                row = {**row, "seconds": round(time.perf_counter() - started, 3)}
                try:
                    fh.write(json.dumps(row, sort_keys=True) + "\n")
                    fh.flush()
                except OSError as exc:  # a full disk: the last checkpoint stays; --resume drops later rows
                    raise write_error(self.path / LOG_FILE, exc) from None

        try:
            yield write
        finally:
            with contextlib.suppress(OSError):
                fh.close()

    def rewind(self, step: int, pools: list[Any]) -> None:
        """Forget what happened after ``step`` (a kill -9 or power loss after its checkpoint): the pools'
        concepts and the log's rows of later steps, and temporary files of interrupted writes."""
        for pool in pools:
            pool.truncate(step)
        for folder in (self.path, *(pool.folder for pool in pools)):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
                tmp.unlink(missing_ok=True)
        path = self.path / LOG_FILE
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            keep = []
            for line in lines:
                try:
                    if json.loads(line)["step"] <= step:
                        keep.append(line)
                except (ValueError, KeyError, TypeError):
                    break  # a torn last line
            if len(keep) != len(lines):
                atomic_write(path, "".join(x + "\n" for x in keep).encode())

    def plot(self, recipe_name: str) -> None:
        """loss.png: one panel per task (raw values faint, moving average bold) and the pool's size."""
        path = self.path / LOG_FILE
        if not path.is_file():
            return
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if len(rows) < 2:
            return
        from distok_cli.plots import loss_png

        png = loss_png(rows, f"{recipe_name}: DisTok training, {rows[-1]['step']} steps, pool {rows[-1]['pool']}")
        atomic_write(self.path / "loss.png", png)

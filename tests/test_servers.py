"""The faults of real servers: one writer per run folder, SIGTERM and SIGHUP during training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from distok_cli.files import checkpoint
from distok_cli.files.runlock import LOCK_NAME, RunLock
from distok_cli.method import trainer

from .conftest import ROOT, assert_one_line_error, break_step, run_cli

FAST = ["estimator.kind=text", "train.estimate_every=5", "train.estimate_n=4", "train.n=4"]
SETS = sum((["--set", s] for s in FAST), [])


@pytest.fixture(scope="module")
def small(tmp_path_factory, kandinsky):
    """(a 1-step run, a token it encoded), made once for this module."""
    root = tmp_path_factory.mktemp("small")
    assert run_cli(["train", "-o", root / "r", "--steps", "1", "-q", *SETS]).code == 0
    assert run_cli(["encode", "cat:1", "-m", root / "r", "-o", root / "mine.distok", "-q"]).code == 0
    return root / "r", root / "mine.distok"


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, kandinsky):
    run = tmp_path / "r"
    assert run_cli(["train", "-o", run, "--steps", "2", "-q", *SETS]).code == 0
    before = (run / "model.safetensors").read_bytes()
    with RunLock(run):  # another process training it (a second open file: flock refuses it as it would a process)
        r = run_cli(["train", "-o", run, "--steps", "4", "--resume", "-q"])
        assert_one_line_error(
            r, 2, f"{run} is being written by another distok process (pid {os.getpid()}); wait for it or stop it"
        )
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        with RunLock(fresh):
            r = run_cli(["train", "-o", fresh, "--steps", "2", "-q", *SETS])
            assert_one_line_error(r, 2, "is being written by another distok process")
        assert sorted(p.name for p in fresh.iterdir()) == [LOCK_NAME]  # nothing written by the refused run
    assert (run / "model.safetensors").read_bytes() == before
    r = run_cli(["train", "-o", run, "--steps", "4", "--resume", "-q"])  # the lock died with its holder
    assert r.code == 0, r.err
    assert checkpoint.load(run).config["step"] == 4


def test_a_stale_lock_file_blocks_nothing(tmp_path, kandinsky):
    run = tmp_path / "r"
    run.mkdir()
    (run / LOCK_NAME).write_text("99999999\n")  # left by a process that was killed: only a kernel lock counts
    assert run_cli(["train", "-o", run, "--steps", "1", "-q", *SETS]).code == 0


@pytest.mark.parametrize(
    ("signum", "code", "words"),
    [
        (signal.SIGTERM, 143, "stopped by SIGTERM"),
        pytest.param(signal.SIGHUP, 129, "stopped by SIGHUP", marks=pytest.mark.slow),
    ],
)
def test_sigterm_and_sighup_checkpoint_and_resume_exactly(tmp_path, monkeypatch, kandinsky, signum, code, words):
    # delivered to the main thread inside the 4th step, as from systemd or a closed terminal
    before = signal.getsignal(signum)  # SIG_DFL; SIG_IGN for SIGHUP under nohup
    break_step(monkeypatch, 4, lambda: os.kill(os.getpid(), signum))
    r = run_cli(["train", "-o", tmp_path / "r", "--steps", "7", "-q", *SETS])
    assert_one_line_error(r, code, f"{words} at step 3; checkpoint saved (continue with --resume)")
    assert checkpoint.load(tmp_path / "r").config["step"] == 3
    assert signal.getsignal(signum) is before  # the command put the handler back
    monkeypatch.undo()
    assert run_cli(["train", "-o", tmp_path / "r", "--resume", "-q"]).code == 0
    assert run_cli(["train", "-o", tmp_path / "straight", "--steps", "7", "-q", *SETS]).code == 0
    for name in ("model.safetensors", "state.safetensors"):
        assert (tmp_path / "r" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


@pytest.mark.slow
def test_real_processes_one_writer_and_sigterm(tmp_path, kandinsky):
    """A real `distok train` holds its folder: `--resume` from a second process is refused naming its pid;
    SIGTERM then stops it with exit 143 and a checkpoint that resumes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = tmp_path / "r"
    cmd = [
        sys.executable,
        "-m",
        "distok_cli",
        "train",
        "-o",
        str(run),
        "--steps",
        "100000",
        "-q",
        *SETS,
        "--set",
        "train.checkpoint_every=5",
    ]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "model.safetensors").exists() or checkpoint.load(run).config["step"] < 5:
            assert p.poll() is None and time.time() < deadline
            time.sleep(0.2)
        second = subprocess.run(
            [sys.executable, "-m", "distok_cli", "train", "-o", str(run), "--resume", "-q"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1] == (
            f"distok: error: {run} is being written by another distok process (pid {p.pid}); wait for it or stop it"
        )
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err
    assert "stopped by SIGTERM at step" in err.splitlines()[-1]
    step = checkpoint.load(run).config["step"]
    r = subprocess.run(
        [sys.executable, "-m", "distok_cli", "train", "-o", str(run), "--resume", "--steps", str(step + 2), "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert checkpoint.load(run).config["step"] == step + 2


# ------------------------------------------------------------------------------------------ full disks


def _mount(folder, options: str):
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    return folder


@pytest.fixture
def disk(tmp_path):
    """A 512 KiB tmpfs: a real file system that fills up (ENOSPC), as a full server disk does."""
    yield _mount(tmp_path / "disk", "size=512k")
    subprocess.run(["umount", "-l", str(tmp_path / "disk")], capture_output=True)


@pytest.fixture
def big_disk(tmp_path):
    """An 8 MiB tmpfs: room for a run's checkpoints until something fills it."""
    yield _mount(tmp_path / "big", "size=8m")
    subprocess.run(["umount", "-l", str(tmp_path / "big")], capture_output=True)


def _fill(disk, leave: int = 0):
    """Fill the disk but ``leave`` bytes (tmpfs counts whole pages)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def _no_temp_files(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")] == []


def _assert_full_disk_error(r, disk):
    assert_one_line_error(r, 1, "No space left on device")
    assert f"cannot write '{disk}" in r.err.splitlines()[-1]  # names the path
    assert _no_temp_files(disk)


def test_sample_on_a_full_disk_leaves_only_whole_files(disk, small):
    from distok_cli.files import tokenfile

    run = small[0]
    r = run_cli(["sample", "--n", "5000", "-m", run, "-o", disk / "tokens", "-q"])
    _assert_full_disk_error(r, disk)
    files = sorted((disk / "tokens").glob("*.distok"))
    assert files and all(tokenfile.load(p).vector.shape for p in files)  # every file under a final name is whole
    assert all(os.path.isfile(p) for p in r.out.split())  # every printed path names a file that is there


@pytest.mark.slow
@pytest.mark.parametrize("command", ["encode", "export", "gallery", "render"])
def test_other_writers_on_a_full_disk_exit_1_naming_the_path(disk, small, command):
    from .conftest import EXAMPLES

    pig = EXAMPLES / "pig-sheep-snake.distok"
    run, mine = small
    _fill(disk, leave=2048)
    args = {
        "encode": ["encode", "cat:0.5,dog:0.5", "-m", run, "-o", disk / "x.distok"],
        "export": ["export", pig, "--to", "comfyui", "-o", disk / "exported"],
        "gallery": ["gallery", EXAMPLES, "-o", disk / "g.html"],
        "render": ["render", mine, "a photo of a <>", "-o", disk / "renders", "--recipe", "tiny"],
    }[command]
    r = run_cli([*args, "-q"])
    _assert_full_disk_error(r, disk)
    assert not any(p.suffix in (".distok", ".safetensors", ".html", ".png") for p in disk.rglob("*"))


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_a_checkpoint_that_does_not_fit_keeps_the_last_one_and_resumes_later(
    big_disk, monkeypatch, kandinsky, tmp_path
):
    disk = big_disk
    run = disk / "r"
    sets = [*SETS, "--set", "train.checkpoint_every=2", "--set", "train.hidden=64"]
    real = trainer.Trainer.train_step
    box = {}

    def filling(self):
        if self.step == 3 and "filler" not in box:  # the disk fills up between checkpoints 2 and 4
            box["filler"] = _fill(disk)
        return real(self)

    monkeypatch.setattr(trainer.Trainer, "train_step", filling)
    r = run_cli(["train", "-o", run, "--steps", "6", "-q", *sets])
    assert_one_line_error(r, 1, "No space left on device")
    assert f"cannot write '{run}" in r.err.splitlines()[-1]
    assert checkpoint.load(run).config["step"] == 2 and _no_temp_files(disk)  # the previous checkpoint, intact
    box["filler"].unlink()  # space again
    monkeypatch.setattr(trainer.Trainer, "train_step", real)
    r = run_cli(["train", "-o", run, "--resume", "-q"])
    assert r.code == 0, r.err
    assert run_cli(["train", "-o", tmp_path / "straight", "--steps", "6", "-q", *sets]).code == 0
    for name in ("model.safetensors", "state.safetensors"):
        assert (run / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


@pytest.fixture
def ro_disk(tmp_path):
    """A read-only file system (a tmpfs mounted ro): even root cannot write there (EROFS)."""
    yield _mount(tmp_path / "ro", "ro,size=64k")
    subprocess.run(["umount", "-l", str(tmp_path / "ro")], capture_output=True)


@pytest.mark.parametrize("command", ["sample", "encode", "render", "train", "export", "gallery"])
def test_a_read_only_file_system_is_refused_before_any_work(ro_disk, small, monkeypatch, command):
    from distok_cli.backends import registry

    from .conftest import EXAMPLES

    run, mine = small

    def no_models(*a, **k):
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(registry, "make_renderer", no_models)
    monkeypatch.setattr(trainer, "build", no_models)
    target = ro_disk / "out"
    args = {
        "sample": ["sample", "--n", "3", "-m", run, "-o", target],
        "encode": ["encode", "cat:1", "-m", run, "-o", ro_disk / "x.distok"],
        "render": ["render", mine, "a photo of a <>", "-o", target, "--recipe", "tiny"],
        "train": ["train", "-o", target, "--steps", "1", *SETS],
        "export": ["export", EXAMPLES / "pig-sheep-snake.distok", "--to", "comfyui", "-o", target],
        "gallery": ["gallery", EXAMPLES, "-o", ro_disk / "g.html"],
    }[command]
    r = run_cli(args)
    assert_one_line_error(r, 2, f"{ro_disk} is read-only")
    assert list(ro_disk.iterdir()) == []


# --------------------------------------------------------------------------- estimate --write, concurrently


def _rewrite_meanwhile(monkeypatch, path, change):
    """Another process rewrites ``path`` while the estimate is being computed."""
    from distok_cli.files import tokenfile
    from distok_cli.jobs import estimation

    real = estimation.estimate_record

    def meanwhile(token, est, seeds):
        record = real(token, est, seeds)
        tokenfile.save(change(tokenfile.load(path)), path)
        return record

    monkeypatch.setattr(estimation, "estimate_record", meanwhile)


def test_estimate_write_keeps_what_another_process_wrote_meanwhile(small, monkeypatch, tmp_path):
    import dataclasses
    import shutil

    from distok_cli.files import tokenfile

    tok = tmp_path / "t.distok"
    shutil.copy(small[1], tok)
    _rewrite_meanwhile(monkeypatch, tok, lambda t: dataclasses.replace(t, title="renamed-meanwhile"))
    r = run_cli(["estimate", tok, "--write", "--estimator", "text", "-q"])
    assert r.code == 0, r.err
    t = tokenfile.load(tok)
    assert t.title == "renamed-meanwhile" and t.estimate is not None  # both updates kept: none lost


def test_estimate_write_refuses_when_the_vector_changed_meanwhile(small, monkeypatch, tmp_path):
    import dataclasses
    import shutil

    from distok_cli.files import tokenfile

    tok = tmp_path / "t.distok"
    shutil.copy(small[1], tok)
    _rewrite_meanwhile(monkeypatch, tok, lambda t: dataclasses.replace(t, vector=t.vector * 2, estimate=None))
    r = run_cli(["estimate", tok, "--write", "--estimator", "text", "-q"])
    assert_one_line_error(r, 1, f"{tok} was rewritten by another process while it was estimated")
    t = tokenfile.load(tok)
    assert (
        t.estimate is None and float(abs(t.vector - 2 * tokenfile.load(small[1]).vector).max()) == 0
    )  # the other write stands


def test_writers_of_one_token_file_take_turns(tmp_path):
    """safety.locked: a second holder waits until the first has replaced the file and let go."""
    import threading

    from distok_cli.files import safety, tokenfile

    from .conftest import EXAMPLES

    tok = tmp_path / "t.distok"
    tok.write_bytes((EXAMPLES / "pig-sheep-snake.distok").read_bytes())
    order = []

    def second():
        with safety.locked(tok):
            order.append("second")

    with safety.locked(tok):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        order.append("first")
        tokenfile.save(tokenfile.load(tok), tok)  # replaced while held: the waiter must lock the new file
    t.join(10)
    assert order == ["first", "second"]

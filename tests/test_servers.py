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

from .conftest import ROOT, assert_one_line_error, run_cli

FAST = ["estimator.kind=text", "train.estimate_every=5", "train.estimate_n=4", "train.n=4"]
SETS = sum((["--set", s] for s in FAST), [])


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, kandinsky):
    run = tmp_path / "r"
    assert run_cli(["train", "-o", run, "--steps", "2", "-q", *SETS]).code == 0
    before = (run / "model.safetensors").read_bytes()
    with RunLock(run):  # another process training it (a second open file: flock refuses it as it would a process)
        r = run_cli(["train", "-o", run, "--steps", "4", "--resume", "-q"])
        assert_one_line_error(r, 2, f"{run} is being written by another distok process (pid {os.getpid()}); wait for it or stop it")
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


@pytest.mark.parametrize(("signum", "code", "words"), [
    (signal.SIGTERM, 143, "stopped by SIGTERM"), (signal.SIGHUP, 129, "stopped by SIGHUP"),
])
def test_sigterm_and_sighup_checkpoint_and_resume_exactly(tmp_path, monkeypatch, kandinsky, signum, code, words):
    calls = {"n": 0}
    real = trainer.Trainer.train_step

    def signalled(self):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signum)  # delivered to the main thread inside the step, as from systemd or a closed terminal
        return real(self)

    monkeypatch.setattr(trainer.Trainer, "train_step", signalled)
    r = run_cli(["train", "-o", tmp_path / "r", "--steps", "7", "-q", *SETS])
    assert_one_line_error(r, code, f"{words} at step 3; checkpoint saved (continue with --resume)")
    assert checkpoint.load(tmp_path / "r").config["step"] == 3
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)  # handlers restored
    monkeypatch.setattr(trainer.Trainer, "train_step", real)
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
    cmd = [sys.executable, "-m", "distok_cli", "train", "-o", str(run), "--steps", "100000", "-q", *SETS,
           "--set", "train.checkpoint_every=5"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "model.safetensors").exists() or checkpoint.load(run).config["step"] < 5:
            assert p.poll() is None and time.time() < deadline
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "distok_cli", "train", "-o", str(run), "--resume", "-q"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1] == (
            f"distok: error: {run} is being written by another distok process (pid {p.pid}); wait for it or stop it")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err
    assert "stopped by SIGTERM at step" in err.splitlines()[-1]
    step = checkpoint.load(run).config["step"]
    r = subprocess.run([sys.executable, "-m", "distok_cli", "train", "-o", str(run), "--resume", "--steps", str(step + 2), "-q"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert checkpoint.load(run).config["step"] == step + 2

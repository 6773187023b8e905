"""Reliability: a hostile run folder loses no file, resume survives damage, no input gives a traceback."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganctl.cli import app
from tests.runfolders import train_tiny

runner = CliRunner()


def train(*args: str):
    return runner.invoke(app, ["train", *args])


def one_line(result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- the run folder's lock and temporary files ------------------------------------------


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    run = train_tiny(tmp_path / "run")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(victim)
    line = one_line(train("--resume", "--out", str(run), "--max-steps", "10", "--quiet"))
    assert ".lock" in line
    assert victim.read_text() == "keep me\n"


def test_a_lock_that_is_a_hard_link_is_not_truncated(tmp_path):
    run = train_tiny(tmp_path / "run")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (run / ".lock").unlink(missing_ok=True)
    os.link(victim, run / ".lock")
    train("--resume", "--out", str(run), "--max-steps", "10", "--quiet")
    assert victim.read_text() == "keep me\n"


def test_a_lock_that_is_a_folder_is_one_line(tmp_path):
    run = train_tiny(tmp_path / "run")
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").mkdir()
    assert ".lock" in one_line(train("--resume", "--out", str(run), "--max-steps", "10", "--quiet"))


def test_a_second_resume_keeps_the_running_trainings_temporary_files(tmp_path):
    run = train_tiny(tmp_path / "run")
    tmp = run / ".x.tmp"
    tmp.write_bytes(b"being written")
    ckpt_tmp = run / "checkpoints" / ".step-000000010.safetensors.abc.tmp"
    ckpt_tmp.write_bytes(b"being written")
    with open(run / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = train("--resume", "--out", str(run), "--max-steps", "10", "--quiet")
    assert "already running" in one_line(result)
    assert tmp.read_bytes() == b"being written" and ckpt_tmp.exists()


def test_stale_temporary_files_are_removed_once_the_lock_is_held(tmp_path):
    run = train_tiny(tmp_path / "run")
    tmp = run / ".x.tmp"
    tmp.write_bytes(b"left by a kill")
    assert train("--resume", "--out", str(run), "--max-steps", "10", "--quiet").exit_code == 0
    assert not tmp.exists()


def test_a_folder_holding_only_stale_temporary_files_counts_as_empty(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.k3j2.tmp").write_bytes(b'{"ganctl_ver')  # killed during the very first write
    result = train("--resume", "--out", str(run), "--quiet")
    line = one_line(result)
    assert "not a ganctl run folder" not in line and "without --resume" in line
    train_tiny(run)  # a fresh training takes it
    assert not (run / ".config.json.k3j2.tmp").exists()

"""Reliability: a hostile run folder loses no file, resume survives damage, no input gives a traceback."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganctl.cli import app
from tests.helpers import one_line_error, read_safetensors, train
from tests.runfolders import train_tiny

runner = CliRunner()


# --- the run folder's lock and temporary files ------------------------------------------


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    run = train_tiny(tmp_path / "run")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(victim)
    line = one_line_error(train("--resume", "--out", str(run), "--max-steps", "10", "--quiet"))
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
    assert ".lock" in one_line_error(train("--resume", "--out", str(run), "--max-steps", "10", "--quiet"))


def test_a_second_resume_keeps_the_running_trainings_temporary_files(tmp_path):
    run = train_tiny(tmp_path / "run")
    tmp = run / ".x.tmp"
    tmp.write_bytes(b"being written")
    ckpt_tmp = run / "checkpoints" / ".step-000000010.safetensors.abc.tmp"
    ckpt_tmp.write_bytes(b"being written")
    with open(run / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = train("--resume", "--out", str(run), "--max-steps", "10", "--quiet")
    assert "already running" in one_line_error(result)
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
    line = one_line_error(result)
    assert "not a ganctl run folder" not in line and "without --resume" in line
    train_tiny(run)  # a fresh training takes it
    assert not (run / ".config.json.k3j2.tmp").exists()


# --- resume that survives damage ------------------------------------------------------------


def _resave(path: Path, change) -> None:
    from safetensors.torch import save_file

    metadata, tensors = read_safetensors(path)
    change(tensors, metadata)
    save_file(tensors, str(path), metadata=metadata)


def _drop_part(tensors, metadata):
    values = json.loads(metadata["values"])
    name = next(iter(values))
    del values[name]
    metadata["values"] = json.dumps(values)


def _misfit(tensors, metadata):
    import torch

    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = torch.zeros(3, 3, 3, 3)


DAMAGES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "not safetensors": lambda p: p.write_bytes(b"\x00garbage" * 100),
    "empty": lambda p: p.write_bytes(b""),
    "missing part": lambda p: _resave(p, _drop_part),
    "tensors that do not fit": lambda p: _resave(p, _misfit),
    "values not an object": lambda p: _resave(p, lambda t, m: m.update(values="[1, 2]")),
}


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to, symlinks=True)
    return to


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(damage, tiny, tmp_path):
    run = _copy(tiny, tmp_path / "run")
    newest = run / "checkpoints" / "step-000000008.safetensors"
    assert newest.exists()
    DAMAGES[damage](newest)
    result = train("--resume", "--out", str(run), "--max-steps", "9", "--quiet")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr
    assert "step-000000008.safetensors" in result.stderr and "from step 4 (step-000000004.safetensors" in result.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and max(steps) <= 9


def test_when_no_checkpoint_is_readable_resume_stops_in_one_line(tiny, tmp_path):
    run = _copy(tiny, tmp_path / "run")
    for path in (run / "checkpoints").glob("step-*.safetensors"):
        path.write_bytes(b"nope")
    before = (run / "generator.safetensors").read_bytes()
    result = train("--resume", "--out", str(run), "--max-steps", "9", "--quiet")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "none of the 2 checkpoint(s)" in result.stderr.splitlines()[-1]
    assert (run / "generator.safetensors").read_bytes() == before


CONFIG_DAMAGES = {
    "not JSON": (lambda c: "{not json", "not JSON"),
    "a list": (lambda c: "[1, 2]", "not an object"),
    "missing recipe": (lambda c: json.dumps({k: v for k, v in c.items() if k != "recipe"}), "lacks 'recipe'"),
    "missing arch": (lambda c: json.dumps({k: v for k, v in c.items() if k != "arch"}), "lacks 'arch'"),
    "wrong type": (lambda c: json.dumps({**c, "seed": "seven"}), "'seed'"),
    "wrong recipe type": (lambda c: json.dumps({**c, "recipe": {**c["recipe"], "batch_size": [1]}}), "'recipe.batch_size'"),
    "bad range": (lambda c: json.dumps({**c, "recipe": {**c["recipe"], "pixel_range": [0, "x"]}}), "'recipe.pixel_range'"),
    "impossible number": (lambda c: json.dumps({**c, "recipe": {**c["recipe"], "batch_size": 0}}), "--batch-size"),
    "unknown architecture": (lambda c: json.dumps({**c, "arch": "no-such-arch"}), "no-such-arch"),
    "not UTF-8": (lambda c: b"\xff\xfe\x00", "not JSON"),
}


@pytest.mark.parametrize("damage", CONFIG_DAMAGES)
def test_a_damaged_config_is_one_line_naming_what_is_wrong(damage, tiny, tmp_path):
    run = _copy(tiny, tmp_path / "run")
    make, expected = CONFIG_DAMAGES[damage]
    content = make(json.loads((run / "config.json").read_text()))
    (run / "config.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    line = one_line_error(train("--resume", "--out", str(run), "--max-steps", "9", "--quiet"))
    assert "config.json" in line and expected in line, line


# --- internal errors and plugins -------------------------------------------------------------


@pytest.fixture
def crashing_runs(monkeypatch):
    from ganctl.runfolder import info as runinfo

    def crash(*args, **kwargs):
        raise ValueError("something ganctl never expected\nsecond line")

    monkeypatch.setattr(runinfo, "list_runs", crash)


@pytest.mark.allows_internal_error
def test_an_internal_error_is_one_line_naming_a_bug(crashing_runs, tmp_path, monkeypatch):
    monkeypatch.delenv("GANCTL_DEBUG", raising=False)
    (tmp_path / "runs").mkdir()
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 70 and "Traceback" not in result.output
    line = one_line_error(result)
    assert "bug in ganctl" in line and "ValueError: something ganctl never expected" in line and "--debug" in line


@pytest.mark.parametrize("how", ["option", "env"])
def test_debug_shows_the_traceback(how, crashing_runs, tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    if how == "env":
        monkeypatch.setenv("GANCTL_DEBUG", "1")
        result = runner.invoke(app, ["runs"])
    else:
        result = runner.invoke(app, ["--debug", "runs"])
    assert isinstance(result.exception, ValueError)  # raised through: Python prints the traceback


@pytest.mark.parametrize(
    "body, expected",
    [
        ("import sys\nsys.exit(3)", "sys.exit(3)"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise BaseException('odd')", "BaseException: odd"),
        ("raise SystemExit", "sys.exit(None)"),
    ],
)
def test_a_plugin_that_exits_is_a_failed_plugin(body, expected, fresh_plugins, tmp_path, capsys):
    import ganctl.plugins as plugins

    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(body)
    plugins.load_file(plugin)
    assert any(expected in str(f) for f in plugins.state.failures), plugins.state.failures
    assert "failed to load" in capsys.readouterr().err
    result = runner.invoke(app, ["--plugin", str(plugin), "list", "--json"])
    assert result.exit_code == 0, result.output


def test_a_damaged_metrics_file_does_not_stop_a_resume(tiny, tmp_path):
    run = _copy(tiny, tmp_path / "run")
    good = (run / "metrics.jsonl").read_bytes()
    (run / "metrics.jsonl").write_bytes(good + b'\xff\xfe[1, 2]\n{"step": "x"}\n"text"\n{"step": NaN}\n{"step": 3')
    result = train("--resume", "--out", str(run), "--max-steps", "9", "--quiet")
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] <= 9

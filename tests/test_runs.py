"""`ganctl runs`: the run folders under the runs root, their progress and state."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
from typer.testing import CliRunner

from ganctl.runfolder import info, layout
from ganctl.runfolder.config import read_config
from ganctl.runfolder.lock import is_running
from ganctl.runfolder.records import read_metrics
from ganctl.cli import app
from tests.runfolders import eval_record, train_record, write_generator, write_run

runner = CliRunner()


def runs_json(*args: str) -> list[dict]:
    result = runner.invoke(app, ["runs", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_real_finished_run(tiny):
    (row,) = runs_json("--root", str(tiny.parent))
    assert row["name"] == "mnist-tiny" and row["path"] == str(tiny)
    assert (row["arch"], row["dataset"], row["loss"]) == ("mnist-dcgan", "synthetic", "bce")
    # 64 images / 16 = 4 steps an epoch, 50 epochs, capped at --max-steps 8
    assert (row["steps_done"], row["steps_planned"], row["steps_planned_exact"]) == (8, 8, True)
    assert row["state"] == "finished" and row["latest"] is True
    assert row["best_fid"] is None and row["skipped_lines"] == 0
    assert row["size_bytes"] == sum(p.stat().st_size for p in tiny.rglob("*") if p.is_file())


def test_states_and_the_latest_mark(tmp_path):
    root = layout.runs_root()
    per_epoch = 10
    done = write_run(root / "done", records=[train_record(s, per_epoch) for s in range(5, 41, 5)], epochs=4)
    # finished at 40, then resumed with --epochs 8 and stopped at 60: config.json still says 4
    # epochs, but the final generator (step 40) predates the last records
    resumed = write_run(root / "resumed", records=[train_record(s, per_epoch) for s in range(5, 61, 5)], epochs=4)
    write_generator(resumed / "generator.safetensors", "mnist-dcgan", step=40, epoch=4.0)
    stopped = write_run(root / "stopped", records=[train_record(s, per_epoch) for s in range(5, 21, 5)], final=False)
    live = write_run(root / "live", records=[train_record(5, per_epoch)], final=False)
    (root / "not-a-run").mkdir()  # no config.json: skipped
    (root / "stray.txt").write_text("hello")
    layout.set_latest(stopped)

    fd = os.open(live / ".lock", os.O_RDWR | os.O_CREAT, 0o644)  # as the trainer holds it
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        rows = {r["name"]: r for r in runs_json()}
        table = runner.invoke(app, ["runs"], env={"COLUMNS": "200"})
    finally:
        os.close(fd)
    assert set(rows) == {"done", "resumed", "stopped", "live"}
    assert rows["done"]["state"] == "finished" and rows["done"]["steps_done"] == 40 and rows["done"]["steps_planned"] == 40
    assert rows["resumed"]["state"] == "interrupted" and rows["resumed"]["steps_done"] == 60
    assert rows["stopped"]["state"] == "interrupted" and rows["stopped"]["latest"] is True
    assert rows["live"]["state"] == "running"
    assert [r["latest"] for r in rows.values()].count(True) == 1
    assert info.summarize(live).state == "interrupted"  # the lock is released: no longer running
    assert info.summarize(done).state == "finished"

    assert table.exit_code == 0
    latest_line = next(line for line in table.stdout.splitlines() if " stopped " in line)
    assert latest_line.lstrip().startswith("*")
    assert "40/40" in table.stdout and "finished" in table.stdout and "running" in table.stdout


def test_steps_past_the_records_and_the_best_fid(tmp_path):
    root = layout.runs_root()
    records = [train_record(s, 10) for s in (5, 10, 15)] + [eval_record(10, 10, 40.0, True), eval_record(20, 10, 30.5, True)]
    run = write_run(root / "r", records=records, final=False)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "step-000000022.safetensors").write_bytes(b"")  # interrupted after its last record
    (row,) = runs_json()
    assert row["steps_done"] == 22 and row["steps_planned"] == 40
    assert (row["best_fid"], row["best_fid_step"]) == (30.5, 20)


def test_planned_steps_are_unknown_before_any_epoch_is_known(tmp_path):
    run = write_run(layout.runs_root() / "new", records=[], final=False, grids=0)
    (row,) = runs_json()
    assert row["steps_done"] == 0 and row["steps_planned"] is None and row["state"] == "interrupted"
    table = runner.invoke(app, ["runs"], env={"COLUMNS": "200"})
    assert "0/?" in table.stdout
    assert info.progress(run, read_config(run), read_metrics(run / "metrics.jsonl")).planned is None


@pytest.mark.parametrize("per_epoch", [1, 3, 7, 390, 937, 1875, 60000])
def test_steps_per_epoch_is_recovered_from_rounded_epochs(per_epoch):
    log_every = 50
    steps = range(log_every, 2 * per_epoch + log_every + 1, log_every)
    pairs = [(s, round(s / per_epoch, 4)) for s in steps]
    found = info.steps_per_epoch(pairs)
    assert found.low <= per_epoch <= found.high
    if any(s % per_epoch == 0 for s in steps) or per_epoch < 2000:
        assert found.exact and found.n == per_epoch


def test_early_records_give_an_estimate_not_a_wrong_exact_count():
    found = info.steps_per_epoch([(2, round(2 / 937, 4))])  # 0.0021: anything from 931 to 975
    assert not found.exact and found.low <= 937 <= found.high
    assert info.steps_per_epoch([]) is None


def test_damaged_lines_are_counted_not_fatal(tmp_path):
    run = write_run(layout.runs_root() / "r", records=[train_record(5, 10)], extra_lines=['{"step": 7, "g_lo', "[1, 2]", "\x00\xff"])
    (row,) = runs_json()
    assert row["skipped_lines"] == 3 and row["steps_done"] == 5
    (run / "config.json").write_text("{not json")
    (row,) = runs_json()
    assert row["state"] == "unreadable" and "config.json" in row["problem"]


def test_the_lock_test_creates_nothing_and_follows_no_link(tmp_path):
    run = write_run(tmp_path / "r", records=[], final=False)
    assert not is_running(run) and not (run / ".lock").exists()
    target = tmp_path / "elsewhere"
    target.write_text("x")
    (run / ".lock").symlink_to(target)
    fd = os.open(target, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert not is_running(run)  # the link is not followed
    finally:
        os.close(fd)
    assert target.read_text() == "x"


def test_names_are_printed_literally(tmp_path):
    write_run(layout.runs_root() / "[bold]x[red]", records=[train_record(5, 10)])
    result = runner.invoke(app, ["runs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "[bold]x[red]" in result.stdout


def test_no_runs_is_one_line_and_a_bad_root_is_an_error(tmp_path):
    empty = runner.invoke(app, ["runs"])
    assert empty.exit_code == 0 and empty.stdout.startswith("No runs under ") and len(empty.stdout.splitlines()) == 1
    assert runs_json() == []
    missing = runner.invoke(app, ["runs", "--root", str(tmp_path / "[/nope]")])
    assert missing.exit_code == 2 and "[/nope] does not exist" in missing.stderr and "Traceback" not in missing.output
    (tmp_path / "file").write_text("")
    assert runner.invoke(app, ["runs", "--root", str(tmp_path / "file")]).exit_code == 2

"""ganctl.runfolder: the one owner of a run folder's names, manifest, records and config reading."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganctl.runfolder import layout as runs
from ganctl.cli import app
from ganctl.errors import GanctlError
from ganctl.runfolder import info, layout
from ganctl.runfolder.config import read_config, training_dataset
from ganctl.runfolder.layout import RunFolder
from ganctl.runfolder.manifest import Manifest, read_manifest, write_manifest
from ganctl.runfolder.records import MetricsLog, read_metrics, truncate_after
from tests.runfolders import eval_record, train_record, write_run

runner = CliRunner()
GANCTL = Path(__file__).parent.parent / "ganctl"


def manifest(**changes) -> Manifest:
    values = dict(steps_per_epoch=10, total_steps=40, epochs=4, images=160, classes={"cat": 100, "dog": 60},
                  world_size=2, device="cuda:0")  # fmt: skip
    return Manifest.create(**{**values, **changes})


# --- layout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("step", [0, 1, 42, 999_999_999, 12_345_678_901])
def test_checkpoint_names_round_trip(step, tmp_path):
    folder = RunFolder(tmp_path)
    path = folder.checkpoint(step)
    assert path.parent == folder.checkpoints and layout.checkpoint_step(path.name) == step
    assert path.match(layout.CHECKPOINT_GLOB)


def test_checkpoint_names_that_are_not_checkpoints(tmp_path):
    for name in ["step-.safetensors", "step-12.safetensors.tmp", ".step-000000001.safetensors.abc.tmp", "step-x1.safetensors", "xstep-1.safetensors"]:
        assert layout.checkpoint_step(name) is None, name
    folder = RunFolder(tmp_path)
    folder.checkpoints.mkdir()
    for step in (100, 9, 10):
        folder.checkpoint(step).write_bytes(b"")
    (folder.checkpoints / "step-x1.safetensors").write_bytes(b"")
    assert [layout.checkpoint_step(p.name) for p in folder.list_checkpoints()] == [9, 10, 100]
    with pytest.raises(ValueError):
        layout.checkpoint_name(-1)


def test_grid_and_snapshot_names(tmp_path):
    folder = RunFolder(tmp_path)
    assert layout.tag_epoch(layout.epoch_tag(7)) == 7 and layout.tag_epoch(layout.FINAL_TAG) is None
    assert folder.epoch_grid(3) == folder.grid(layout.epoch_tag(3)) and folder.epoch_grid(3).match(layout.GRID_GLOB)
    assert not folder.final_grid.match(layout.GRID_GLOB) and not folder.real_grid.match(layout.GRID_GLOB)
    folder.samples.mkdir()
    for path in (folder.epoch_grid(2), folder.epoch_grid(1), folder.real_grid):
        path.write_bytes(b"")
    assert folder.animation_frames() == [folder.epoch_grid(1), folder.epoch_grid(2)]
    folder.final_grid.write_bytes(b"")
    assert folder.animation_frames() == [folder.epoch_grid(1), folder.epoch_grid(2), folder.final_grid]
    folder.snapshots.mkdir()
    for epoch in (2, 1):
        folder.snapshot(layout.epoch_tag(epoch)).write_bytes(b"")
    assert folder.list_snapshots() == [folder.snapshot("epoch-0001"), folder.snapshot("epoch-0002")]
    assert layout.find_generator(tmp_path) == folder.snapshot("epoch-0002")  # no final generator yet
    folder.final_generator.write_bytes(b"")
    assert layout.find_generator(tmp_path) == folder.final_generator


def test_the_compatibility_module_names_the_same_files():
    for name in ("CONFIG", "METRICS", "LOCK", "CHECKPOINTS", "SAMPLES", "SNAPSHOTS", "FINAL_GENERATOR", "RAW_GENERATOR", "BEST_GENERATOR"):
        assert getattr(runs, name) == getattr(layout, name)
    assert runs.find_generator is layout.find_generator and runs.latest_run is layout.latest_run


def _string_constants(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def test_no_run_folder_name_is_spelled_outside_the_layout():
    names = {layout.CONFIG, layout.MANIFEST, layout.METRICS, layout.LOCK, layout.FINAL_GENERATOR, layout.RAW_GENERATOR,
             layout.BEST_GENERATOR, layout.PROGRESS_ANIMATION, layout.FINAL_GRID, layout.REAL_GRID, layout.GRID_GLOB,
             layout.CHECKPOINT_GLOB, layout.SNAPSHOT_GLOB, layout.TENSORBOARD}  # fmt: skip
    prefixes = ("epoch-", "step-", "generator-")
    # files of other formats that share a name: a Hugging Face folder's and a .keras archive's
    # config.json; the default output of `ganctl import`
    other_formats = {"interop/hf_folder.py", "interop/keras_import.py", "commands/import_cmd.py"}
    offenders = []
    for path in GANCTL.rglob("*.py"):
        if path == GANCTL / "runfolder" / "layout.py" or str(path.relative_to(GANCTL)) in other_formats:
            continue
        for text in _string_constants(ast.parse(path.read_text())):
            if text in names or text.startswith(prefixes):
                offenders.append(f"{path.relative_to(GANCTL)}: {text!r}")
    assert not offenders, offenders


def test_the_package_imports_no_torch():
    code = "import sys, ganctl.runfolder, ganctl.runfolder.info, ganctl.runfolder.layout; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(GANCTL.parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=GANCTL.parent)
    assert result.stdout.strip() == "False"


# --- manifest ---------------------------------------------------------------------------------
def test_manifest_written_once_and_read_back(tmp_path):
    written = manifest()
    assert write_manifest(tmp_path, written) is True
    assert read_manifest(tmp_path) == written
    assert written.ganctl_version and written.created and written.classes == {"cat": 100, "dog": 60}
    assert json.loads(RunFolder(tmp_path).manifest.read_text())["steps_per_epoch"] == 10
    assert write_manifest(tmp_path, manifest(total_steps=80)) is False  # a resumed run keeps its first
    assert read_manifest(tmp_path).total_steps == 40


def test_manifest_classes_from_pairs_and_numbers_of_any_kind(tmp_path):
    import numpy as np

    made = Manifest.create(steps_per_epoch=np.int64(3), total_steps=9, epochs=3, images=np.int64(48),
                           classes=zip(("a", "b"), np.array([40, 8])), device="cpu")  # fmt: skip
    write_manifest(tmp_path, made)
    assert read_manifest(tmp_path).classes == {"a": 40, "b": 8} and read_manifest(tmp_path).images == 48


def test_an_absent_manifest_is_none(tmp_path):
    assert read_manifest(tmp_path) is None


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not an object"),
        (json.dumps({"steps_per_epoch": 10}).encode(), "lacks 'total_steps'"),
        (lambda m: {**m, "steps_per_epoch": 0}, "'steps_per_epoch' is 0"),
        (lambda m: {**m, "total_steps": "40"}, "'total_steps' is '40'"),
        (lambda m: {**m, "images": True}, "'images' is True"),
        (lambda m: {**m, "classes": {"cat": -1}}, "'classes'"),
        (lambda m: {**m, "created": "yesterday"}, "'created'"),
    ],
)
def test_a_damaged_manifest_is_one_sentence(content, expected, tmp_path):
    if callable(content):
        content = json.dumps(content(manifest().to_json())).encode()
    RunFolder(tmp_path).manifest.write_bytes(content)
    with pytest.raises(GanctlError) as caught:
        read_manifest(tmp_path)
    message = str(caught.value)
    assert "manifest.json is damaged" in message and expected in message and "\n" not in message


def test_a_damaged_manifest_makes_the_run_unreadable_not_a_crash(tmp_path):
    run = write_run(layout.runs_root() / "r", records=[train_record(5, 10)])
    RunFolder(run).manifest.write_text("{")
    (row,) = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
    assert row["state"] == "unreadable" and "manifest.json" in row["problem"]


# --- progress: the manifest's plan, or the records' for an older run --------------------------
def test_progress_takes_the_plan_from_the_manifest(tmp_path):
    # one early record: its epoch (0.0021) fits anything from 931 to 975 steps an epoch
    run = write_run(layout.runs_root() / "r", records=[train_record(2, 937)], epochs=5, final=False)
    guessed = info.progress(run, read_config(run), read_metrics(RunFolder(run).metrics))
    assert not guessed.planned_exact and guessed.planned != 5 * 937
    write_manifest(run, manifest(steps_per_epoch=937, total_steps=5 * 937, epochs=5))
    p = info.progress(run, read_config(run), read_metrics(RunFolder(run).metrics))
    assert (p.done, p.planned, p.planned_exact, p.per_epoch.n) == (2, 5 * 937, True, 937)
    (row,) = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
    assert (row["steps_planned"], row["steps_planned_exact"]) == (5 * 937, True)


def test_a_manifest_beats_records_that_disagree(tmp_path):
    # records of a hand-edited file claim 10 steps an epoch; the run was set up with 12 and a cap of 30
    run = write_run(layout.runs_root() / "r", records=[train_record(s, 10) for s in (5, 10, 15)], epochs=4, final=False)
    assert info.summarize(run).steps_planned == 40
    write_manifest(run, manifest(steps_per_epoch=12, total_steps=30, epochs=4))
    assert info.summarize(run).steps_planned == 30


def test_an_old_run_without_a_manifest_reads_as_before(tmp_path):
    records = [train_record(s, 10) for s in range(5, 41, 5)] + [eval_record(20, 10, 30.5, True)]
    run = write_run(layout.runs_root() / "old", records=records, epochs=4)
    assert read_manifest(run) is None
    summary = info.summarize(run)
    assert (summary.steps_done, summary.steps_planned, summary.planned_exact, summary.state) == (40, 40, True, "finished")
    assert (summary.best_fid, summary.best_step) == (30.5, 20)


def test_a_real_run_writes_its_manifest(tiny):
    m = read_manifest(tiny)  # 64 synthetic images at batch 16, --max-steps 8
    assert (m.steps_per_epoch, m.total_steps, m.images, m.classes, m.world_size, m.device) == (4, 8, 64, {}, 1, "cpu")
    assert m.torch_version and m.epochs >= 2


# --- records ----------------------------------------------------------------------------------
def test_one_writer_one_reader(tmp_path):
    log = MetricsLog(tmp_path / layout.METRICS)
    log.append(train_record(2, 4))
    log.append(eval_record(4, 4, 50.0, True))
    log.append({"step": 4, "event": "d_collapse", "message": "D wins"})
    log.append({"step": 6, "event": "low_diversity"})
    with open(log.path, "a") as f:
        f.write('{"step": 8, "g_lo\n[1]\n{"step": -1}\n\n')
    metrics = log.read()
    assert [r["step"] for r in metrics.train] == [2] and metrics.evals[0]["fid"] == 50.0
    assert [e["event"] for e in metrics.events] == ["d_collapse", "low_diversity"] and metrics.events[1]["message"] == ""
    assert metrics.skipped == 3 and metrics.last_step() == 6
    assert read_metrics(log.path) == metrics
    assert not MetricsLog(tmp_path / "absent.jsonl").read()


def test_truncate_after(tmp_path):
    log = MetricsLog(tmp_path / layout.METRICS)
    for step in (2, 4, 6, 8):
        log.append(train_record(step, 4))
    log.append({"step": 4, "event": "d_collapse", "message": "x"})
    with open(log.path, "a") as f:
        f.write('{"step": 3, "torn\n')
    log.truncate_after(4)
    metrics = log.read()
    assert [r["step"] for r in metrics.train] == [2, 4] and len(metrics.events) == 1 and metrics.skipped == 0
    truncate_after(log.path, 0)
    assert log.path.read_text() == ""
    truncate_after(tmp_path / "new.jsonl", 0)  # no file yet: an empty one
    assert (tmp_path / "new.jsonl").read_text() == ""


# --- config.json --------------------------------------------------------------------------------
def test_one_config_reader(tmp_path):
    with pytest.raises(GanctlError, match="is not a ganctl run folder"):
        read_config(tmp_path)
    RunFolder(tmp_path).config.write_text('{"arch": "x"}')
    with pytest.raises(GanctlError, match="lacks 'recipe'"):
        read_config(tmp_path)
    RunFolder(tmp_path).config.write_text("[" * 100_000)
    with pytest.raises(GanctlError, match="not JSON"):
        read_config(tmp_path)
    RunFolder(tmp_path).config.write_text(json.dumps({"recipe": {"dataset": "fashion-mnist"}}))
    assert read_config(tmp_path)["recipe"]["dataset"] == "fashion-mnist"
    folder = RunFolder(tmp_path)
    assert training_dataset(folder.final_generator) == "fashion-mnist"
    assert training_dataset(folder.snapshot("epoch-0001")) == "fashion-mnist"
    folder.config.write_text(json.dumps({"recipe": {"dataset": 3}}))
    assert training_dataset(folder.final_generator) is None


def test_a_conditional_run_records_its_classes(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--arch", "mnist-dcgan", "--conditional", "--dataset", "synthetic", "--limit", "96",
                                 "--batch-size", "16", "--max-steps", "2", "--quiet", "--out", str(run)])  # fmt: skip
    assert result.exit_code == 0, result.output
    m = read_manifest(run)
    assert list(m.classes) == ["circle", "square", "triangle"] and sum(m.classes.values()) == 96 == m.images
    assert (m.steps_per_epoch, m.total_steps) == (6, 2)

"""Property-based tests of the run-folder readers (`ganctl runs`, `ganctl report`, `train --resume`)
over generated damaged folders: hand-edited records of any JSON, odd file names in checkpoints/ and
snapshots/, any config.json and manifest.json. Every reader gives a result or a one-sentence
GanctlError; `runs` lists every folder; nothing is written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganctl.errors import GanctlError
from ganctl.runfolder import info, layout, report
from ganctl.runfolder.records import MAX_STEP, read_metrics, truncate_after
from tests.runfolders import write_generator

SETTINGS = settings(max_examples=int(os.environ.get("GANCTL_FUZZ_EXAMPLES", "25")), deadline=None,
                    suppress_health_check=list(HealthCheck), derandomize="GANCTL_FUZZ_EXAMPLES" not in os.environ)  # fmt: skip

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1.7e308, -1.7e308, 5e-324]),
)  # fmt: skip
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["$x$", "a$b", r"\frac{1}{0}$", "<b>", "x" * 300, "_", "^"]))
JSON = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
                    max_leaves=8)  # fmt: skip
KEYS = st.sampled_from(["step", "epoch", "g_loss", "d_loss_real", "d_acc_fake", "fid", "kid_mean", "kid_std", "event", "message",
                        "best", "protocol", "eval_seconds", "lr_g", "$x$", "r1"])  # fmt: skip
RECORD = st.dictionaries(KEYS, JSON, max_size=6).map(json.dumps)
LINE = st.one_of(RECORD, RECORD, st.text(max_size=30), st.sampled_from(["[" * 5000, "{", "null", "1e400", '{"step": NaN}']))
NAMES = st.one_of(st.from_regex(r"step-[0-9]{1,40}\.safetensors", fullmatch=True),
                  st.sampled_from(["step-.safetensors", "step--1.safetensors", "step-\u0663.safetensors", "garbage", "step-1e9.safetensors"]))  # fmt: skip
CONFIG = st.one_of(
    st.fixed_dictionaries({"arch": JSON, "recipe": st.dictionaries(st.sampled_from(["epochs", "dataset", "loss", "batch_size"]), JSON)},
                          optional={"max_steps": JSON, "seed": JSON}),
    JSON,
)  # fmt: skip
MANIFEST = st.one_of(st.none(), st.dictionaries(st.sampled_from(["steps_per_epoch", "total_steps", "format_version", "data"]), JSON))
META = st.dictionaries(st.sampled_from(["step", "epoch", "fid"]), st.one_of(TEXT, NUMBERS.map(str)))


def make_run(root: Path, name: str, data) -> Path:
    """A run folder drawn from ``data``: config, records, manifest, checkpoint names, a generator's metadata."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(data.draw(CONFIG)))
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in data.draw(st.lists(LINE, max_size=8))))
    manifest = data.draw(MANIFEST)
    if manifest is not None:
        (run / "manifest.json").write_text(json.dumps(manifest))
    for checkpoint in data.draw(st.lists(NAMES, max_size=3)):
        (run / "checkpoints" / checkpoint).write_bytes(b"")
    if data.draw(st.booleans()):
        write_generator(run / "generator.safetensors", "mnist-dcgan", **data.draw(META))
    return run


@pytest.fixture
def no_plots(monkeypatch):
    """The page without matplotlib's drawing (seconds per example); tests/test_hostile_inputs.py draws the hostile values."""
    monkeypatch.setattr(report, "draw", lambda panels, events, smooth: b"")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@SETTINGS
@given(data=st.data())
def test_runs_lists_every_generated_folder_and_changes_nothing(data):
    root = Path(tempfile.mkdtemp(prefix="ganctl-fuzz-runs-"))
    try:
        names = [f"run{i}" for i in range(data.draw(st.integers(1, 3)))]
        for name in names:
            make_run(root, name, data)
        before = files_of(root)
        summaries = info.list_runs(root)
        assert sorted(s.name for s in summaries) == names
        for s in summaries:
            assert 0 <= s.steps_done <= MAX_STEP
            assert s.state in ("finished", "running", "interrupted", "unreadable")
            json.dumps(s.to_json())  # what `ganctl runs --json` prints
        assert files_of(root) == before
    finally:
        shutil.rmtree(root)


@SETTINGS
@given(data=st.data())
def test_the_report_page_of_a_generated_folder_is_built_or_refused_in_one_sentence(data, no_plots):
    root = Path(tempfile.mkdtemp(prefix="ganctl-fuzz-report-"))
    try:
        run = make_run(root, "run", data)
        before = files_of(root)
        try:
            page = report.build_report([info.resolve_run(run)])
        except GanctlError as exc:
            assert "\n" not in str(exc)
        else:
            assert page.html.startswith("<!DOCTYPE html>") and "<script" not in page.html.lower()
        assert files_of(root) == before
    finally:
        shutil.rmtree(root)


@SETTINGS
@given(lines=st.lists(LINE, max_size=10), step=st.integers(0, 2**60))
def test_records_read_back_bounded_and_resume_cuts_them_at_the_checkpoint(lines, step):
    folder = Path(tempfile.mkdtemp(prefix="ganctl-fuzz-records-"))
    try:
        path = folder / "metrics.jsonl"
        path.write_text("".join(line + "\n" for line in lines))
        metrics = read_metrics(path)
        for record in (*metrics.train, *metrics.evals, *metrics.events):
            assert type(record["step"]) is int and 0 <= record["step"] <= MAX_STEP
        for event in metrics.events:
            assert isinstance(event["event"], str) and isinstance(event["message"], str)
        for key in metrics.curve_keys():
            steps, values = metrics.series(key)
            assert all(abs(v) < float("inf") for v in values)
        truncate_after(path, step)  # what train --resume does to the records
        kept = read_metrics(path)
        assert kept.skipped == 0 and all(r["step"] <= step for r in (*kept.train, *kept.evals, *kept.events))
    finally:
        shutil.rmtree(folder)


@SETTINGS
@given(names=st.lists(NAMES, max_size=6))
def test_checkpoint_names_list_in_step_order_and_only_their_own(names):
    folder = Path(tempfile.mkdtemp(prefix="ganctl-fuzz-checkpoints-"))
    try:
        for name in names:
            (folder / name).write_bytes(b"")
        steps = [layout.checkpoint_step(p.name) for p in layout.list_checkpoints(folder)]
        assert all(s is not None and 0 <= s <= MAX_STEP for s in steps) and steps == sorted(steps)
    finally:
        shutil.rmtree(folder)

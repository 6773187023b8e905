"""Every table fits 80 and 100 columns: columns are left out whole, never the run, its state or the main figure."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ganctl.cli import app
from ganctl.runfolder import layout
from tests.runfolders import eval_record, train_record, write_run

runner = CliRunner()


def _fits(result, width: int) -> list[str]:
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    assert "…" not in result.stdout, result.stdout  # nothing cut in the middle
    return lines


@pytest.mark.parametrize("width", [80, 100])
def test_runs_keeps_the_name_state_best_fid_and_latest_mark(width):
    root = layout.runs_root()
    finished = write_run(root / "sngan-upconv-small-20261207-231500", epochs=4, best=True,
                         records=[train_record(s, 10) for s in range(5, 41, 5)] + [eval_record(40, 10, 123.456, True)])  # fmt: skip
    write_run(root / "cifar-dcgan-20261207-231501", records=[train_record(s, 10) for s in range(5, 21, 5)], final=False)
    layout.set_latest(finished)
    lines = _fits(runner.invoke(app, ["runs"], env={"COLUMNS": str(width)}), width)
    header = lines[0].split()
    assert header[:1] == ["run"] and "state" in header and lines[0].rstrip().endswith("best FID")
    latest = next(line for line in lines if "sngan-upconv-small-20261207-231500" in line)
    assert latest.startswith("*") and "finished" in latest and "123.46" in latest
    other = next(line for line in lines if "cifar-dcgan-20261207-231501" in line)
    assert "interrupted" in other
    # what was left out is said, in the documented order
    assert "(not shown, for width: changed, size" in result_text(lines)


def result_text(lines: list[str]) -> str:
    return " ".join(lines)


def test_runs_shows_every_column_when_there_is_room():
    write_run(layout.runs_root() / "done", records=[train_record(s, 10) for s in range(5, 41, 5)])
    lines = _fits(runner.invoke(app, ["runs"], env={"COLUMNS": "200"}), 200)
    assert lines[0].split() == ["run", "arch", "dataset", "loss", "steps", "state", "best", "FID", "at", "step", "size", "changed"]
    assert "not shown" not in result_text(lines)


@pytest.mark.parametrize("width", [80, 100])
def test_list_fits(width):
    lines = _fits(runner.invoke(app, ["list"], env={"COLUMNS": str(width)}), width)
    text = result_text(lines)
    assert "sngan-upconv-small" in text and "synthetic" in text and "3 classes" in text


@pytest.mark.parametrize("width", [80, 100])
def test_bench_fits_and_says_what_it_measures(monkeypatch, width):
    from ganctl.bench import harness

    def result(name, variant, **extra):
        fields = dict(arch=name, variant=variant, device="cpu", batch_size=64, train_it_per_s=12.345, train_images_per_s=790.1,
                      baseline_it_per_s=10.0, speedup=1.23, cost_vs_plain=None, sample_images_per_s=5000.0,
                      peak_memory_mb=1234.5, gflop_per_iteration=1.234, achieved_tflop_per_s=0.015)  # fmt: skip
        return harness.BenchResult(**{**fields, **extra})

    monkeypatch.setattr(harness, "bench_arch", lambda name, device, **_: result(name, "plain"))
    monkeypatch.setattr(harness, "bench_ingredients",
                        lambda name, device, **_: result(name, "all ingredients", speedup=None, cost_vs_plain=1.4))  # fmt: skip
    out = runner.invoke(app, ["bench", "--arch", "sngan-upconv-small", "--device", "cpu"], env={"COLUMNS": str(width)})
    lines = _fits(out, width)
    text = result_text(lines)
    assert "sngan-upconv-small" in text and "12.345" in text and "790.1" in text and "all ingredients" in text
    assert "(not shown, for width: TFLOP/s" in text
    # progress on stderr, before the table
    assert "[1/1] sngan-upconv-small: the plain step" in out.stderr and "12.35 it/s" in out.stderr

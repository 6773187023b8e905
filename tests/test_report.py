"""`ganctl report`: one self-contained HTML page about a run, or several compared."""

from __future__ import annotations

import base64
import fcntl
import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganctl.runfolder import report
from ganctl.runfolder import report_plots
from ganctl.runfolder import layout as runs
from ganctl.cli import app
from tests.runfolders import eval_record, train_record, write_run

pytest.importorskip("matplotlib", reason="ganctl report draws with matplotlib (pip install 'ganctl[report]')")

runner = CliRunner()
SECTIONS = ("summary", "recipe", "curves", "evaluation", "events", "samples", "generators")


def invoke(*args: str):
    return runner.invoke(app, ["report", *args])


def images(page: str) -> list[Image.Image]:
    """Every <img> of the page, decoded: each must be an inline PNG."""
    decoded = []
    for src in re.findall(r'<img src="([^"]*)"', page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()
        decoded.append(image)
    return decoded


def assert_self_contained(page: str) -> None:
    for attribute, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', page):
        assert value.startswith("data:") or value.startswith("#"), f"{attribute}={value[:60]}"
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    assert "url(" not in page  # no CSS fetching anything either


def test_report_of_a_real_run(tiny, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny, run)
    result = invoke(str(run))
    assert result.exit_code == 0, result.output
    out = run / "report.html"
    assert result.stdout.startswith(f"Wrote {out} ")
    page = out.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert_self_contained(page)
    decoded = images(page)
    # the curves, two grids in the strip (epochs 1 and 2) and the latest grid large
    assert len(decoded) == 1 + 2 + 1
    assert decoded[0].width >= 800  # the training curves
    assert decoded[-1].size == Image.open(run / "samples" / "epoch-0002.png").size
    assert "epoch 1" in page and "epoch 2" in page and "Latest grid (epoch 2)" in page
    assert "8 / 8" in page and "finished" in page
    assert "generator.safetensors" in page and "architecture: <code>mnist-dcgan</code>" in page
    assert "<th>batch_size</th><td>16</td>" in page and "<th>max_steps</th><td>8</td>" in page
    assert "No evaluation records" in page and "None: no loss collapse" in page


def test_default_run_is_the_latest_and_an_existing_report_is_kept(tiny, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(tiny.parent, root)
    monkeypatch.setenv("GANCTL_RUNS_DIR", str(root))
    runs.set_latest(root / "mnist-tiny")
    assert invoke().exit_code == 0
    out = root / "mnist-tiny" / "report.html"
    out.write_text("mine")
    again = invoke()
    assert again.exit_code == 2 and "already exists; pass --force" in again.stderr and "Traceback" not in again.output
    assert out.read_text() == "mine"
    assert invoke("--force", "--quiet").exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    by_name = invoke("mnist-tiny", "--out", str(tmp_path / "by-name.html"))  # a run's name, as `ganctl runs` shows it
    assert by_name.exit_code == 0 and (tmp_path / "by-name.html").is_file()


def test_damaged_lines_are_skipped_and_counted_once(tmp_path):
    records = [train_record(s, 10) for s in range(2, 41, 2)]
    run = write_run(tmp_path / "r", records=records, extra_lines=['{"step": 42, "g_l', "not json", '{"no": "step"}'])
    result = invoke(str(run))
    assert result.exit_code == 0
    assert result.stderr.count("3 unreadable lines skipped") == 1
    page = (run / "report.html").read_text()
    assert page.count("3 unreadable lines skipped") == 1


def test_several_runs_are_overlaid(tmp_path, monkeypatch):
    a = write_run(tmp_path / "a", records=[train_record(s, 10) for s in range(2, 41, 2)] + [eval_record(20, 10, 50.0, True), eval_record(40, 10, 45.0, True)])
    # a WGAN-like critic: no accuracy, and statistics of its own
    wgan = [{k: v for k, v in train_record(s, 10, r1=0.1 * s, lr_g=1e-4).items() if not k.startswith("d_acc")} for s in range(2, 41, 2)]
    wgan.append({"step": 30, "event": "d_collapse", "message": "discriminator loss has stayed below 0.05"})
    b = write_run(tmp_path / "b", records=wgan, loss="wgan-gp")
    assert invoke(str(a), str(b)).exit_code == 2  # several runs: --out is needed

    drawn = []
    real_draw = report.draw
    monkeypatch.setattr(report, "draw", lambda panels, events, smooth: drawn.append((panels, events)) or real_draw(panels, events, smooth))
    out = tmp_path / "compare.html"
    result = invoke(str(a), str(b), "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert_self_contained(page)
    images(page)
    assert "2 runs compared" in page
    assert re.search(r'<tr class="differs"><th>loss</th><td>bce</td><td>wgan-gp</td></tr>', page)
    assert '<tr><th>batch_size</th><td>16</td><td>16</td></tr>' in page  # the same: not highlighted

    (train_panels, events), (eval_panels, _) = drawn
    by_title = {p.title: p for p in train_panels}
    assert [s.label for s in by_title["g_loss"].series] == ["a", "b"]  # overlaid, one colour per run
    assert len({s.colour for s in by_title["g_loss"].series}) == 2
    assert all(len(s.steps) == 20 for s in by_title["g_loss"].series)
    assert {"r1", "lr_g", "d_acc_real"} <= set(by_title)
    assert [len(s.steps) for s in by_title["d_acc_real"].series] == [20, 0]  # b has none: no line
    assert events == [(30, "d_collapse", by_title["g_loss"].series[1].colour)]  # the event in b's colour
    assert [s.label for s in eval_panels[0].series] == ["a", "b"] and eval_panels[0].best[0][:2] == (40, 45.0)


def test_one_run_groups_its_statistics_and_marks_the_best_fid(tmp_path, monkeypatch):
    records = [train_record(s, 10, lr_g=1e-4, lr_d=2e-4, gp=0.5) for s in range(1, 101)]
    records += [eval_record(s, 10, fid, True) for s, fid in ((30, 40.0), (60, 20.0))]
    records += [eval_record(90, 10, 25.0, False), {"step": 70, "event": "low_diversity", "message": "samples <b>stopped</b> varying"}]
    run = write_run(tmp_path / "r", records=records, best=True)
    drawn = []
    monkeypatch.setattr(report, "draw", lambda panels, events, smooth: drawn.append((panels, events)) or b"\x89PNG")
    assert invoke(str(run)).exit_code == 0
    (train_panels, events), (eval_panels, _) = drawn
    assert [p.title for p in train_panels] == ["Losses", "Discriminator accuracy", "Speed", "Learning rates", "gp"]
    assert [s.label for s in train_panels[0].series] == ["d_loss_real", "d_loss_fake", "g_loss"]
    assert [e[:2] for e in events] == [(70, "low_diversity")]
    assert eval_panels[0].best[0][:2] == (60, 20.0) and "best 20.00 at step 60" in eval_panels[0].best[0][2]
    page = (run / "report.html").read_text()
    assert "samples &lt;b&gt;stopped&lt;/b&gt; varying" in page  # text from the run is escaped
    assert "best.safetensors" in page and "fid: <code>12.5</code>" in page


def test_smoothing_is_a_debiased_ema():
    assert report_plots.ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # no pull towards 0
    assert report_plots.ema([0.0, 10.0], 0.5) == pytest.approx([0.0, 10 * 0.5 / 0.75])
    assert report_plots.smoothing_weight(8) == 0.0 and 0 < report_plots.smoothing_weight(100) < report_plots.smoothing_weight(10_000) <= 0.9


def test_an_unfinished_run_and_a_running_one(tmp_path):
    run = write_run(tmp_path / "r", records=[train_record(s, 10) for s in range(2, 11, 2)], final=False, grids=1)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert invoke(str(run)).exit_code == 0
    finally:
        os.close(fd)
    page = (run / "report.html").read_text()
    assert "is still training: this page shows it up to step 10" in page
    assert "No generator file yet" in page and "Latest grid (epoch 1)" in page
    assert invoke(str(run), "--force").exit_code == 0
    assert "interrupted" in (run / "report.html").read_text()


def test_many_grids_are_thinned_and_a_damaged_grid_is_left_out(tmp_path):
    run = write_run(tmp_path / "r", records=[train_record(10, 10)], grids=report.MAX_STRIP + 15)
    (run / "samples" / "epoch-0001.png").write_bytes(b"not a png")  # the first grid is always among those shown
    big = run / "samples" / "final.png"
    Image.fromarray(np.zeros((300, 600, 3), dtype=np.uint8)).save(big)
    assert invoke(str(run)).exit_code == 0
    page = (run / "report.html").read_text()
    assert f"({report.MAX_STRIP} of {report.MAX_STRIP + 15} shown, evenly spaced)" in page
    assert "epoch-0001.png is not a readable image (UnidentifiedImageError), left out" in page
    assert "<figcaption>epoch 1</figcaption>" not in page and "<figcaption>epoch 2</figcaption>" in page
    decoded = images(page)
    assert decoded[-1].size == (600, 300)  # the final grid as it is
    assert all(im.width <= report.THUMB_WIDTH for im in decoded[1:-1])
    names = [p.name for p in report._thin(sorted((run / "samples").glob("epoch-*.png")), 10)]
    assert len(names) == 10 and len(set(names)) == 10 and names[0] == "epoch-0001.png" and names[-1] == f"epoch-{report.MAX_STRIP + 15:04d}.png"


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda t: t / "missing", "does not exist"),
        (lambda t: (t / "plain").mkdir() or t / "plain", "is not a ganctl run folder (no config.json)"),
        (lambda t: (t / "f.txt").write_text("x") and t / "f.txt", "is a file, not a run folder"),
        (lambda t: write_run(t / "empty", records=[], grids=0, final=False), "has no metrics records and no sample grids yet"),
        (lambda t: (t / "[red]bad").mkdir() or t / "[red]bad", "[red]bad is not a ganctl run folder"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(setup, message, tmp_path):
    target = setup(tmp_path)
    result = invoke(str(target))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output and not list(tmp_path.rglob("report.html"))


def test_no_run_at_all_and_an_out_that_is_a_folder(tmp_path):
    result = invoke()
    assert result.exit_code == 2 and "there is no run to read" in result.stderr and "GANCTL_RUNS_DIR" in result.stderr
    run = write_run(tmp_path / "r", records=[train_record(10, 10)])
    (tmp_path / "folder").mkdir()
    result = invoke(str(run), "--out", str(tmp_path / "folder"))
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_without_matplotlib_the_report_says_how_to_get_it(tmp_path, monkeypatch):
    run = write_run(tmp_path / "r", records=[train_record(10, 10)])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke(str(run))
    assert result.exit_code == 2 and "pip install 'ganctl[report]'" in result.stderr
    assert not (run / "report.html").exists()


@pytest.mark.slow
def test_the_page_renders_in_a_headless_browser(tiny, tmp_path):
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no chromium on PATH: install it (apt-get install chromium) to render the report")
    out = tmp_path / "report.html"
    assert invoke(str(tiny), "--out", str(out)).exit_code == 0
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1200,2000", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.is_file(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line]
    assert not console, console  # no script errors, nothing fetched
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # text, plots and grids, not a blank page
    assert (pixels < 100).mean() > 0.01  # dark pixels: text and the grids' black padding

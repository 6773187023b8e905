"""What `ganctl train` says: a short start, speed and time left that do not jump, one warning on
an oversubscribed machine, Ctrl-C as news (not an error), and a resumed finished run."""

from __future__ import annotations

import io

import typer
from rich.console import Console
from typer.testing import CliRunner

from ganctl.commands.common import handles_errors
from ganctl.commands.progress import ProgressView, oversubscription_warning
from ganctl.training.loop import TrainingInterrupted, finished_already
from tests.helpers import train

TINY = ["--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "32", "--batch-size", "16"]


def test_the_start_is_a_few_lines_a_newcomer_can_read_and_a_finished_run_says_so(tmp_path, monkeypatch):
    from ganctl import install_check

    broken = "torchvision 9.9 does not work with torch 2.99 (its operators do not load: x); install the one made for it"
    monkeypatch.setattr(install_check, "torchvision_problem", lambda: broken)
    run = tmp_path / "run"
    result = train("--arch", "sngan-upconv-small", "--dataset", "synthetic", "--limit", "48", "--batch-size", "16",
                   "--conditional", "--max-steps", "1", "--lr", "0.001", "--out", run)  # fmt: skip
    assert result.exit_code == 0, result.output
    start = result.stdout.splitlines()[:-1]  # the last line: "Run folder: ..." once it is done
    assert 5 <= len(start) <= 8, start
    text = "\n".join(start)
    assert start[0].startswith("Training sngan-upconv-small: hinge loss, batch 16, its recipe with ")
    assert "--batch-size 16" in start[0] and "--g-lr 0.001" in start[0] and "--conditional on" in start[0]
    assert "Data: synthetic, 48 images at 32 px, 3 classes (conditional)" in text
    assert "Device: cpu, float32" in text  # conftest: a CPU without native bf16
    assert "Length: 1 iterations (0.333 epochs of 3)" in text
    assert f"Run folder: {run}" in text and f"ganctl train --resume --out {run}" in text
    for raw in ("ema_rampup", "stream_data", "None"):  # no raw field names
        assert raw not in text
    assert result.stderr.count(f"warning: {broken}") == 1  # a broken torchvision: one line naming the fix, first

    again = train("--resume", "--out", run, "--quiet")
    assert again.exit_code == 0, again.output
    assert f"{run} had already finished its 1 iterations" in again.stderr
    assert f"a larger --max-steps (it has 1) or --epochs, e.g. `ganctl train --resume --out {run} --max-steps 2`" in again.stderr


def test_a_finished_run_is_extended_with_a_larger_epochs():
    from ganctl.training.config import TrainConfig
    from ganctl.registry import ARCHITECTURES

    config = TrainConfig(arch="mnist-dcgan", recipe=ARCHITECTURES.get("mnist-dcgan").obj.recipe.replace(epochs=3))
    said = finished_already(config, "runs/x", 60)
    assert said.startswith("runs/x had already finished its 60 iterations")
    assert "a larger --epochs (it has 3), e.g. `ganctl train --resume --out runs/x --epochs 6`" in said


def test_verbose_and_dry_run_print_every_setting(tmp_path):
    verbose = train(*TINY, "--max-steps", "1", "--verbose", "--out", tmp_path / "run")
    assert verbose.exit_code == 0, verbose.output
    assert "ema_rampup" in verbose.stdout and "Stop with Ctrl-C" not in verbose.stdout
    dry = train(*TINY, "--dry-run", "--out", tmp_path / "dry")
    assert dry.exit_code == 0 and "ema_rampup" in dry.stdout and not (tmp_path / "dry").exists()


def test_ctrl_c_is_news_with_the_resume_command_not_an_error():
    app = typer.Typer()

    @app.command()
    @handles_errors
    def stop() -> None:
        raise TrainingInterrupted("stopped at step 12; checkpoint saved; continue with `ganctl train --resume --out runs/x`")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 130
    assert result.stderr.strip() == "stopped at step 12; checkpoint saved; continue with `ganctl train --resume --out runs/x`"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Facts:
    batch_size = 64


def _view(width: int = 160, load: float = 0.5, cores: int = 2):
    clock, buffer = FakeClock(), io.StringIO()
    view = ProgressView(console=Console(file=buffer, width=width, force_terminal=False), clock=clock,
                        load_average=lambda: load, cores=lambda: cores)  # fmt: skip
    return view, clock, buffer


def _left_seconds(view) -> int:
    left = view._times().split("left ")[1]  # m:ss or h:mm:ss
    seconds = 0
    for part in left.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def test_speed_and_time_left_come_from_a_moving_window_that_does_not_jump():
    view, clock, _ = _view()
    view.start(total=10_000, done=0, per_epoch=100, facts=Facts())
    lefts = []
    for step in range(1, 400):
        # a step of 0.5 s, with every tenth step ten times slower (an evaluation, a snapshot)
        clock.now += 5.0 if step % 10 == 0 else 0.5
        view.advance(step)
        if step > 200:
            lefts.append(_left_seconds(view))
    # from one step to the next the time left moves by a few percent at most (a slow step is
    # averaged in), and it stays near the truth: 0.95 s for each step left
    assert max(abs(a - b) / b for a, b in zip(lefts, lefts[1:])) < 0.05
    assert abs(lefts[-1] - (10_000 - 399) * 0.95) < 0.05 * lefts[-1]
    # the speed is the window's: 10 steps per 9.5 s of 64 images
    assert abs(view.images_per_s() - 64 * 10 / 9.5) < 3
    view.stop()


def test_one_warning_when_the_load_average_exceeds_the_cores():
    view, clock, buffer = _view(load=9.5, cores=2)
    view.start(total=1000, done=0, per_epoch=100, facts=Facts())
    for step in range(1, 200):
        clock.now += 1.0
        view.advance(step)
    view.stop()
    said = buffer.getvalue()
    assert said.count("oversubscribed") == 1 and "load average 9.5 on 2 cores" in said and "OMP_NUM_THREADS=1" in said


def test_no_warning_on_an_idle_machine_nor_in_the_first_seconds():
    view, clock, buffer = _view(load=1.9, cores=2)
    view.start(total=1000, done=0, per_epoch=100, facts=Facts())
    for step in range(1, 100):
        clock.now += 1.0
        view.advance(step)
    view.stop()
    assert "oversubscribed" not in buffer.getvalue()
    early, clock, buffer = _view(load=50.0, cores=2)
    early.start(total=1000, done=0, per_epoch=100)
    for step in range(1, 20):
        clock.now += 1.0
        early.advance(step)
    early.stop()
    assert "oversubscribed" not in buffer.getvalue()
    assert oversubscription_warning(2.0, 2) is None and oversubscription_warning(2.5, 2) is not None

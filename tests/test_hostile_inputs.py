"""Hostile inputs answered where they are read: damaged or hand-edited run folders, FIFOs put where
files belong, numbers beyond what fits in memory, a wrong torchrun environment, a full disk under
TensorBoard. Each is one line, a non-zero exit, within seconds, and changes nothing."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganctl import distributed
from ganctl.errors import GanctlError
from ganctl.registry import ARCHITECTURES
from ganctl.networks.weights import save_generator
from tests.helpers import invoke, one_line_error, train
from tests.runfolders import train_record, write_run

CLASSES = ("cat", "dog", "a,b")


def snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    """Every regular file under ``folder`` with its size and modification time (FIFOs left unread)."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*") if p.is_file()}


def ganctl_subprocess(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganctl", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)  # fmt: skip


def one_line(process: subprocess.CompletedProcess, *fragments: str) -> str:
    assert process.returncode not in (0, 70), (process.returncode, process.stderr)
    assert "Traceback" not in process.stdout + process.stderr, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error"), process.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- run folders ----------------------------------------------------------------------------------
def damaged_runs(root: Path) -> dict[str, Path]:
    """One good run and runs damaged each in its own way, under ``root``."""
    records = [train_record(s, 10) for s in (10, 20, 30)]
    runs = {"good": write_run(root / "good", records=records)}

    def run(name: str, extra: list[str] = ()) -> Path:
        runs[name] = write_run(root / name, records=records, extra_lines=list(extra))
        return runs[name]

    run("huge-step", [json.dumps({"step": 10**30, "epoch": 1.0, "g_loss": 1.0}), '{"step": 1e308, "g_loss": 1}'])
    run("bigint-value", [json.dumps({"step": 31, "epoch": 3.1, "g_loss": 10**400})])
    odd = run("odd-checkpoints")
    (odd / "checkpoints").mkdir()
    for name in ("step-99999999999999999999999999.safetensors", "step-\u0663.safetensors", "garbage"):
        (odd / "checkpoints" / name).write_bytes(b"")
    (odd / "checkpoints" / "step-000000040.safetensors").mkdir()
    deep = run("deep-config")
    (deep / "config.json").write_text('{"recipe": {}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    huge_epochs = run("huge-epochs")
    config = json.loads((huge_epochs / "config.json").read_text())
    config["recipe"]["epochs"], config["max_steps"] = 10**30, 10**40
    (huge_epochs / "config.json").write_text(json.dumps(config))
    os.mkfifo(run("fifo-metrics") / "metrics.jsonl.new")
    os.replace(root / "fifo-metrics" / "metrics.jsonl.new", root / "fifo-metrics" / "metrics.jsonl")
    os.mkfifo(run("fifo-lock") / ".lock")
    os.mkfifo(run("fifo-grid") / "samples" / "epoch-0009.png")
    os.mkfifo(root / "LATEST")
    return runs


def test_runs_lists_every_run_when_some_are_damaged(tmp_path):
    runs = damaged_runs(tmp_path / "runs")
    before = snapshot(tmp_path / "runs")
    start = time.monotonic()
    result = ganctl_subprocess("runs", "--root", str(tmp_path / "runs"), "--json")
    assert time.monotonic() - start < 30 and result.returncode == 0, result.stderr
    listed = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(listed) == set(runs)
    assert listed["huge-step"]["steps_done"] == 30 and listed["huge-step"]["skipped_lines"] == 2
    assert listed["bigint-value"]["steps_done"] == 31  # the record counts; its value is no number
    assert listed["odd-checkpoints"]["steps_done"] == 30
    assert listed["deep-config"]["state"] == "unreadable" and "not JSON" in listed["deep-config"]["problem"]
    assert listed["fifo-metrics"]["state"] == "unreadable" and "FIFO" in listed["fifo-metrics"]["problem"]
    assert listed["fifo-lock"]["state"] != "running"
    assert snapshot(tmp_path / "runs") == before


@pytest.mark.parametrize("damage", ["fifo-metrics", "fifo-config"])
def test_a_fifo_in_a_run_folder_is_one_line_not_a_wait(damage, tmp_path):
    run = write_run(tmp_path / "r", records=[train_record(s, 10) for s in (10, 20)])
    target = run / ("metrics.jsonl" if damage == "fifo-metrics" else "config.json")
    target.unlink()
    os.mkfifo(target)
    result = ganctl_subprocess("report", str(run), "--out", str(tmp_path / "r.html"), timeout=60)
    one_line(result, *([str(target), "FIFO"] if damage == "fifo-metrics" else ["not a ganctl run folder (no config.json)"]))
    assert not (tmp_path / "r.html").exists()


def test_the_report_of_a_diverged_run_with_odd_statistic_names(tmp_path):
    """Finite losses near ±1.7e308, names with $ and mathtext, hundreds of statistics, odd events: a page."""
    odd_names = {"$x$": 1.0, "a$b": 2.0, r"\frac{1}{0}$^_": 3.0, "<b>bold</b>": 4.0, "n" * 10_000: 5.0}
    records = [train_record(s, 10, g_loss=1.7e308, d_loss_real=-1.7e308, **odd_names, **{f"s{i}": float(i) for i in range(6)})
               for s in (10, 20, 30)]  # fmt: skip
    extra = [
        json.dumps({"step": 30, "epoch": 3.0, "fid": 1.7e308, "kid_mean": -1.7e308, "kid_std": "x", "best": True}),
        json.dumps({"step": 20, "event": {"not": "text"}, "message": "m"}),
        json.dumps({"step": 20, "event": "d_collapse", "message": {"a": [1, 2]}}),
        json.dumps({"step": 21, "event": "low_diversity", "message": "<b>bold</b>"}),
        json.dumps({"step": 25, "epoch": 2.5, "g_loss": 10**400}),
    ]
    run = write_run(tmp_path / "diverged", records=records, extra_lines=extra)
    result = invoke("report", run, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "more statistics are not plotted" in page and "1 unreadable line skipped" in page


# --- generator files and numbers --------------------------------------------------------------------
@pytest.fixture(scope="module")
def conditional(tmp_path_factory) -> Path:
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    args = arch.arch_args(latent_dim=4, num_classes=3)
    path = tmp_path_factory.mktemp("g") / "conditional.safetensors"
    torch.manual_seed(0)
    save_generator(path, arch.build_generator(**args), architecture="mnist-dcgan", arch_args=args, pixel_range=(0.0, 1.0),
                   class_names=CLASSES, class_counts=(1, 1, 1))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def z_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("z") / "z.npy"
    np.save(path, np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32))
    return path


@pytest.mark.parametrize("command", [
    ["sample", "--n", "2"], ["latent-walk", "--steps", "2"], ["latent-arith", "--concept", "a=0", "--expr", "a"],
])  # fmt: skip
@pytest.mark.parametrize("empty", ["", ",", " , "])
def test_a_class_option_that_names_no_class_is_one_line(command, empty, conditional, z_file, tmp_path):
    extra = ["--z-file", str(z_file)] if command[0] == "latent-arith" else []
    result = invoke(*command, *extra, "--weights", conditional, "--class", empty, "--out", tmp_path / "o.png")
    one_line_error(result, "--class", "names no class", "cat, dog, a,b")
    assert not (tmp_path / "o.png").exists()


def test_a_class_named_with_a_comma_is_chosen_whole(conditional, tmp_path):
    result = invoke("sample", "--weights", conditional, "--class", "a,b", "--n", "2", "--out", tmp_path / "o.png")
    assert result.exit_code == 0, result.output
    assert "classes a,b." in result.stdout


def test_a_class_name_a_generator_file_cannot_hold_is_refused_before_training(tmp_path):
    from ganctl.conditional import class_name_problem

    assert class_name_problem("d" * 255) is None  # the longest folder name a file system allows
    for name in ("cat", os.fsdecode(b"caf\xe9")):  # a folder name that is not UTF-8
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / "data" / name / f"{i}.png")
    result = train("--arch", "mnist-dcgan", "--dataset", f"folder:{tmp_path / 'data'}", "--image-size", "28", "--channels", "1",
                   "--conditional", "--max-steps", "1", "--batch-size", "4", "--quiet", "--out", tmp_path / "run")  # fmt: skip
    one_line_error(result, "class name", "is not valid UTF-8 text")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, fragments", [
    (["sample", "--n", str(10**12)], ["1,000,000,000,000 images", "memory"]),
    (["sample", "--scale", str(10**6)], ["--scale"]),
    (["latent-walk", "--steps", str(10**9), "--out", "w.gif"], ["frames", "--steps"]),
    (["latent-walk", "--rows", str(10**9), "--out", "w.gif"], ["--rows"]),
    (["inspect-arch", "cifar-dcgan", "--latent-dim", str(10**9)], ["parameters", "--latent-dim"]),
    (["bench", "--arch", "mnist-dcgan", "--batch-size", "0"], ["--batch-size must be from 1 to 65,536"]),
    (["latent-arith", "--concept", "a=0", "--expr", "9" * 400 + "*a"], ["above 1000"]),
    (["latent-arith", "--concept", "a=0", "--expr", "a", "--noise", "1e308"], ["--noise must be from 0 to 1000"]),
    (["sample", "--z-value", "1e308"], ["--z-value must be a number from -1000 to 1000"]),
    (["latent-walk", "--fps", "1e9", "--out", "w.gif"], ["--fps must be a positive number, at most 100"]),
])  # fmt: skip
def test_numbers_beyond_memory_or_range_are_one_line_before_any_work(args, fragments, mnist, z_file, tmp_path):
    weights = [] if args[0] in ("inspect-arch", "bench") else ["--weights", str(mnist)]
    z = ["--z-file", str(z_file)] if args[0] == "latent-arith" else []
    start = time.monotonic()
    one_line_error(invoke(*args, *weights, *z), *fragments)
    assert time.monotonic() - start < 30
    assert not any(tmp_path.glob("*.png")) and not any(tmp_path.glob("*.gif"))


# --- data ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["shape", "float", "huge", "negative", "text", "fifo"])
def test_a_damaged_image_cache_is_one_line(damage, tmp_path):
    from ganctl.data.cache import cached_folder

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 50 * i).save(folder / f"{i}.png")
    cache = tmp_path / "cache"
    cached_folder(folder, 8, 1, cache_dir=cache)
    (path,) = cache.glob("*.safetensors")
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    entry = header["images"]
    if damage == "fifo":
        path.unlink()
        os.mkfifo(path)
    else:
        entry["shape"] = {"shape": [3, 4, 4, 4], "huge": [2**40, 2**20, 2**20, 1], "negative": [-3, 8, 8, 1],
                          "text": ["3", 8, 8, 1], "float": entry["shape"]}[damage]  # fmt: skip
        entry["dtype"] = "F32" if damage == "float" else "U8"
        if damage == "shape":  # consistent with the file's size: another size's cache
            entry["shape"] = [3, 4, 4, 4]
        path.write_bytes(data[:8] + json.dumps(header).encode().ljust(length) + data[8 + length :])
    with pytest.raises(GanctlError, match="image cache|holds images of shape"):
        cached_folder(folder, 8, 1, cache_dir=cache)


def test_a_decompression_bomb_is_skipped_and_counted(tmp_path, monkeypatch):
    from ganctl.data import load_folder_labelled

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the bomb: 40×40 px over a limit of 1,000
    (tmp_path / "d").mkdir()
    Image.new("L", (40, 40)).save(tmp_path / "d" / "bomb.png")
    Image.new("L", (20, 20)).save(tmp_path / "d" / "fine.png")
    said = []
    images, _, _ = load_folder_labelled(tmp_path / "d", 8, 1, log=said.append)
    assert len(images) == 1 and len(said) == 1 and said[0].startswith("skipped 1 unreadable file(s): bomb.png (")


# --- torchrun's environment ------------------------------------------------------------------------------
MASTER = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize("env, fragment", [
    ({"WORLD_SIZE": "2", "RANK": "5", **MASTER}, "RANK=5 must be below WORLD_SIZE=2"),
    ({"WORLD_SIZE": "x"}, "WORLD_SIZE='x'"),
    ({"WORLD_SIZE": ""}, "WORLD_SIZE=''"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0'"),
    ({"WORLD_SIZE": str(10**30)}, "WORLD_SIZE="),
    ({"WORLD_SIZE": "2", "RANK": "-1", **MASTER}, "RANK='-1'"),
    ({"WORLD_SIZE": "2", "LOCAL_RANK": "abc", **MASTER}, "LOCAL_RANK='abc'"),
    ({"WORLD_SIZE": "2"}, "MASTER_ADDR is not set"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "99999"}, "MASTER_PORT='99999'"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "abc"}, "MASTER_PORT='abc'"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}, "MASTER_PORT=''"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "no.such.host.invalid", "MASTER_PORT": "29500"}, "MASTER_ADDR='no.such.host.invalid' names no host"),
])  # fmt: skip
def test_a_wrong_torchrun_environment_is_one_line_naming_the_variable(env, fragment, tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = train("--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "16", "--max-steps", "1", "--out", tmp_path / "run")
    one_line_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_a_world_whose_other_processes_never_come_stops_within_the_timeout(tmp_path):
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29400 + os.getpid() % 500),
           distributed.START_TIMEOUT_ENV: "2"}  # fmt: skip
    start = time.monotonic()
    result = ganctl_subprocess("train", "--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "16", "--max-steps", "1",
                               "--out", str(tmp_path / "run"), env=env, timeout=90)  # fmt: skip
    assert time.monotonic() - start < 60
    one_line(result, "WORLD_SIZE=2", "within 2 s", distributed.START_TIMEOUT_ENV)
    assert not (tmp_path / "run").exists()


# --- a full disk under TensorBoard -----------------------------------------------------------------------
def test_a_full_disk_under_tensorboard_on_resume_is_one_line(tiny, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    import tensorboard.summary.writer.record_writer as record_writer

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_writer.RecordWriter, "write", full)
    run = tmp_path / "run"
    shutil.copytree(tiny, run)
    checkpoints = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    result = train("--resume", "--out", run, "--max-steps", "12", "--tensorboard", "--quiet")
    one_line_error(result, "TensorBoard", "No space left on device", "--resume")
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == checkpoints


# --- the net under all of it ------------------------------------------------------------------------------
@pytest.mark.allows_internal_error
def test_an_internal_error_is_recorded_for_the_suites_check(monkeypatch):
    from ganctl.commands.common import INTERNAL_ERROR_LOG
    from ganctl.runfolder import info

    monkeypatch.setattr(info, "list_runs", lambda *a, **k: 1 / 0)
    invoke("runs")
    assert "ZeroDivisionError" in Path(os.environ[INTERNAL_ERROR_LOG]).read_text()

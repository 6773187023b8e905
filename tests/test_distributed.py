"""ganctl train under torchrun: two gloo processes on the CPU.

Every run here is launched with torchrun itself (``python -m torch.distributed.run --standalone``),
on a tiny synthetic dataset, for a few iterations.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganctl import distributed
from ganctl.errors import GanctlError
from ganctl.training.checkpoint import list_checkpoints, load_checkpoint
from ganctl.networks.weights import load_generator
from tests.helpers import read_tensors as tensors

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "example-plugin" / "tiny_gan.py"
ARGS = ["--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "256", "--batch-size", "16",
        "--max-steps", "12", "--checkpoint-every", "4", "--log-every", "4", "--seed", "7", "--quiet",
        "--no-amp"]  # float32 on any processor: the processes are subprocesses, out of conftest's reach


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ, "OMP_NUM_THREADS": "1", "GANCTL_RUNS_DIR": str(tmp_path / "runs"), "GANCTL_OFFLINE": "1",
        "GANCTL_CACHE_DIR": str(tmp_path / "cache"),
    }  # fmt: skip


def torchrun_command(args: list[str], nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), "-m", "ganctl", *args]


def torchrun(tmp_path: Path, args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        torchrun_command(args, nproc), cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True, timeout=300
    )


def ganctl(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ganctl", *args], cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def ganctl_errors(stderr: str) -> list[str]:
    """The "Error: ..." lines the processes printed (torchrun adds its own report after them)."""
    return [line for line in stderr.splitlines() if line.startswith("Error: ")]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    """An uninterrupted 2-process run, with no --out: its folder is found under the runs root."""
    tmp_path = tmp_path_factory.mktemp("straight")
    result = torchrun(tmp_path, ["train", *ARGS])
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_two_processes_write_one_run_folder_one_metrics_file_and_a_loadable_generator(straight_run):
    runs = [p for p in (straight_run / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs  # both processes trained into rank 0's folder
    run = runs[0]
    assert (straight_run / "runs" / "LATEST").read_text().strip() == str(run.resolve())
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 12 // 4  # one record per log interval, written once
    assert [json.loads(line)["step"] for line in lines] == [4, 8, 12]
    generator, info = load_generator(run / "generator.safetensors")
    assert generator(torch.zeros(2, info.latent_dim)).shape == (2, 1, 28, 28)
    newest = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])
    # every rank's own random streams are in the checkpoint; the shared ones once
    assert {"rng_penalty/rank0.state", "rng_penalty/rank1.state", "rng_torch/rank1.cpu", "rng_latent/state"} <= set(newest.tensors)
    assert newest.values["rng_torch"]["ranks"] == 2


def test_two_processes_average_gradients_like_one_process_with_the_same_global_batch(tmp_path):
    """No batch norm, no dropout: 2 processes × 8 images compute what 1 process × 16 does (to float
    tolerance), in every phase: D, lazy R1 (double backward), G, and the EMA after it."""
    args = ["--plugin", str(EXAMPLE_PLUGIN), "train", "--arch", "tiny-mlp-gan", "--limit", "256", "--max-steps", "6",
            "--reg", "r1", "--reg-every", "2", "--ema-kimg", "0.05", "--log-every", "3", "--quiet", "--no-amp"]
    two = torchrun(tmp_path, [*args, "--batch-per-gpu", "8", "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr
    assert json.loads((tmp_path / "two" / "config.json").read_text())["recipe"]["batch_size"] == 16  # the global batch
    one = ganctl(tmp_path, [*args, "--batch-size", "16", "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    for name in ("generator.safetensors", "generator-raw.safetensors"):
        a, b = tensors(tmp_path / "one" / name), tensors(tmp_path / "two" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
    # the statistics are averaged over the processes: the same losses as one process's
    logged = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("one", "two")]
    for a, b in zip(*logged):
        assert b["g_loss"] == pytest.approx(a["g_loss"], abs=1e-4)


def rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of the worker of ``rank`` that torchrun (pid ``launcher``) started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def launch_and_kill_rank_1(tmp_path: Path, torchrun_options: list[str], run: Path) -> subprocess.Popen:
    """Start a 2-process run and SIGKILL rank 1 once the first checkpoint is on disk."""
    command = torchrun_command(["train", *ARGS, "--out", str(run)])
    command[3:3] = torchrun_options  # after `-m torch.distributed.run`
    launcher = subprocess.Popen(command, cwd=tmp_path, env=environment(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list_checkpoints(run / "checkpoints") and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.05)
    victim = rank_pid(launcher.pid, 1)
    assert victim is not None and launcher.poll() is None, "the run ended before a rank could be killed"
    os.kill(victim, signal.SIGKILL)
    return launcher


def assert_same_generator_as(straight_run: Path, run: Path) -> None:
    straight = next(p for p in (straight_run / "runs").iterdir() if p.is_dir())
    a, b = tensors(straight / "generator.safetensors"), tensors(run / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [4, 8, 12]


@pytest.mark.slow  # two torchrun launches
def test_sigkill_of_one_rank_stops_the_run_and_resume_is_bitwise_identical(straight_run, tmp_path):
    run = tmp_path / "killed"
    launcher = launch_and_kill_rank_1(tmp_path, [], run)
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert not (run / "generator.safetensors").exists()

    resumed = torchrun(tmp_path, ["train", *ARGS, "--out", str(run), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_generator_as(straight_run, run)


@pytest.mark.slow
def test_torchrun_restarts_resume_from_the_newest_checkpoint_by_themselves(straight_run, tmp_path):
    run = tmp_path / "restarted"
    launcher = launch_and_kill_rank_1(tmp_path, ["--max-restarts", "1"], run)
    _, stderr = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, stderr
    assert f"torchrun restart 1: resuming {run} from its newest checkpoint" in stderr
    assert_same_generator_as(straight_run, run)


@pytest.mark.slow
def test_ctrl_c_under_torchrun_saves_one_checkpoint_together_and_says_so_once(tmp_path):
    run = tmp_path / "run"
    args = [a if a != "12" else "100000" for a in ARGS]  # a run that would go on for a long time
    launcher = subprocess.Popen(
        torchrun_command(["train", *args, "--out", str(run)]), cwd=tmp_path, env=environment(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert time.time() < deadline and launcher.poll() is None, "the run did not start"
        time.sleep(0.1)
    os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches torchrun and every process
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    said = [line for line in stderr.splitlines() if "stopped at step" in line]
    assert len(said) == 1, stderr
    step = int(said[0].split("stopped at step ")[1].split(";")[0])
    assert step % 4 == 0  # at a log interval, where the processes agree
    assert load_checkpoint(list_checkpoints(run / "checkpoints")[-1]).step == step


def test_resume_with_another_world_size_continues_and_says_so_in_one_line(straight_run, tmp_path):
    import shutil

    straight = next(p for p in (straight_run / "runs").iterdir() if p.is_dir())
    run = tmp_path / "copy"
    shutil.copytree(straight, run)
    result = ganctl(tmp_path, ["train", "--resume", "--out", str(run), "--max-steps", "16"])
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "process(es)" in line]
    assert len(said) == 1 and "written by 2 process(es) and this run has 1" in said[0]
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 16


# --- bad input ------------------------------------------------------------------------------------
def test_a_batch_the_processes_cannot_share_is_refused_in_one_line(tmp_path):
    result = torchrun(tmp_path, ["train", *ARGS, "--batch-size", "18", "--out", str(tmp_path / "run")])
    assert result.returncode != 0
    assert ganctl_errors(result.stderr) == [
        "Error: --batch-size 18 is split into halves of 9 real and fake images, which 2 processes cannot share "
        "equally; use a multiple of 4"
    ]
    assert not (tmp_path / "run").exists()


def test_nccl_for_a_cpu_run_is_refused_in_one_line(tmp_path):
    result = torchrun(tmp_path, ["train", *ARGS, "--device", "cpu", "--dist-backend", "nccl", "--out", str(tmp_path / "run")])
    assert result.returncode != 0
    errors = ganctl_errors(result.stderr)
    assert len(errors) == 1 and "nccl" in errors[0]
    assert not (tmp_path / "run").exists()


def test_a_run_folder_another_training_holds_is_refused_on_rank_0(straight_run, tmp_path):
    import shutil

    run = tmp_path / "held"
    shutil.copytree(next(p for p in (straight_run / "runs").iterdir() if p.is_dir()), run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with open(run / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = torchrun(tmp_path, ["train", "--resume", "--out", str(run), "--max-steps", "16"])
    assert result.returncode != 0
    assert ganctl_errors(result.stderr) == [f"Error: another training is already running in {run}"]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing touched


@pytest.mark.parametrize(
    "options, message",
    [
        (["--sync-bn", "--device", "cpu"], "--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU"),
        (["--batch-per-gpu", "8", "--batch-size", "16"], "give --batch-size (the global batch) or --batch-per-gpu, not both"),
        (["--batch-per-gpu", "0"], "--batch-per-gpu must be at least 1, not 0"),
        (["--dist-backend", "mpi"], "unknown --dist-backend 'mpi'; use auto, nccl or gloo"),
    ],
)
def test_bad_distributed_options_in_one_process_are_refused_in_one_line(options, message, tmp_path):
    from typer.testing import CliRunner

    from ganctl.cli import app

    args = ["train", *[a for a in ARGS if a not in ("--batch-size", "16")], *options, "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"Error: {message}"]
    assert not (tmp_path / "run").exists()


def test_batch_per_gpu_in_one_process_is_the_batch(tmp_path):
    from typer.testing import CliRunner

    from ganctl.cli import app

    args = ["train", "--arch", "mnist-dcgan", "--batch-per-gpu", "24", "--dry-run", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert any(line.split()[:2] == ["batch_size", "24"] for line in result.stdout.splitlines())


# --- the helpers, in one process --------------------------------------------------------------------
def test_torchrun_environment_is_read_and_checked():
    assert distributed.detect({}) == (0, 0, 1, 0)
    master = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "TORCHELASTIC_RESTART_COUNT": "2", **master}
    assert distributed.detect(env) == (3, 1, 4, 2)
    with pytest.raises(GanctlError, match="RANK=4 must be below WORLD_SIZE=4"):
        distributed.detect({"RANK": "4", "WORLD_SIZE": "4", **master})
    with pytest.raises(GanctlError, match="RANK='x' must be a whole number"):
        distributed.detect({"RANK": "x", "WORLD_SIZE": "4", **master})


def test_rank_seeds_keep_rank_0_on_the_run_seed_and_differ_elsewhere():
    assert distributed.rank_seed(5, 0) == 5  # one process computes exactly as before
    seeds = {distributed.rank_seed(5, rank) for rank in range(8)} | {distributed.rank_seed(5, 0, restart_step=10)}
    assert len(seeds) == 9 and all(0 <= s < 2**62 for s in seeds)


def test_global_batch_must_split_evenly():
    four = distributed.Processes(rank=0, world=4)
    four.check_batch(64, 32, halves=True)
    with pytest.raises(GanctlError, match="cannot be shared equally by 4 processes"):
        four.check_batch(30, 30, halves=False)
    distributed.Processes().check_batch(7, 3, halves=True)  # one process takes any batch


# --- evaluation shared by the processes ---------------------------------------------------------------
EVAL_N = 10  # not a multiple of 2 × the batch: the shares and the padding are uneven


def evaluation(weights: Path, processes: distributed.Processes):
    from ganctl import metrics
    from ganctl.training.evaluation import TrainingEval

    metrics.statistics.MIN_FID_SAMPLES = 8  # a CPU measures 2,048 images in minutes
    return TrainingEval(
        dataset="synthetic", data_dir=None, image_size=16, channels=1, train_images=64, n=EVAL_N, inception=str(weights),
        download=False, device=torch.device("cpu"), say=lambda message: None, processes=processes,
    )  # fmt: skip


def tiny_generator() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 256), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 16, 16)))


def measure_in_process(rank: int, world: int, store: str, weights: str, out: str) -> None:
    """One of ``world`` processes (torch.multiprocessing): its share of the evaluation."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        result = evaluation(Path(weights), distributed.Processes(rank=rank, local_rank=rank, world=world)).measure(
            tiny_generator(), (-1.0, 1.0), 8
        )
        assert (result is None) == (rank != 0)
        if result is not None:
            Path(out).write_text(json.dumps({"fid": result["fid"], "kid_mean": result["kid_mean"], "protocol": result["protocol"]}))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # Inception on the CPU
def test_two_processes_share_an_evaluation_and_get_one_process_figures(tmp_path, weights_file, monkeypatch):
    from ganctl import metrics

    monkeypatch.setattr(metrics.statistics, "MIN_FID_SAMPLES", metrics.statistics.MIN_FID_SAMPLES)  # restored after
    one = evaluation(weights_file, distributed.Processes()).measure(tiny_generator(), (-1.0, 1.0), 8)
    out = tmp_path / "two.json"
    torch.multiprocessing.spawn(
        measure_in_process, args=(2, str(tmp_path / "store"), str(weights_file), str(out)), nprocs=2, join=True
    )
    two = json.loads(out.read_text())
    assert two["protocol"]["n_evaluated"] == EVAL_N and two["protocol"]["evaluated"]["processes"] == 2
    assert two["fid"] == pytest.approx(one["fid"], rel=1e-4)
    assert two["kid_mean"] == pytest.approx(one["kid_mean"], rel=1e-3, abs=1e-6)

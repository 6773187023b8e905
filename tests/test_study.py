"""``ganctl study``: variants over seeds as ordinary runs, continued after a kill, summarised with t intervals."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy import stats as scipy_stats

from ganctl.study import results, spec, stats
from tests.formats import write_mnist
from ganctl.cli import app
from tests.helpers import invoke, one_line_error, runner

SEEDS = 3


def study_args(data: Path, out: Path, *extra: str, vary: str = "d_lr=2e-4,4e-4") -> list[str]:
    """A 2 variants x 3 seeds study of 2-step mnist-dcgan runs on 32 written MNIST images."""
    return [
        "study", "--arch", "mnist-dcgan", "--dataset", "mnist", "--data-dir", str(data), "--no-download", "--no-amp",
        "--limit", "32", "--batch-size", "8", "--max-steps", "2", "--log-every", "1",
        "--vary", vary, "--seeds", str(SEEDS), "--metric", "g_loss", "--out", str(out), *extra,
    ]  # fmt: skip


def final_g_loss(run: Path) -> float:
    """By hand: the last g_loss line of the run's own metrics.jsonl."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["g_loss"] for r in lines if "g_loss" in r][-1]


def spec_state(run: Path) -> str:
    from ganctl.study.runner import action_of

    return action_of(run)


def test_a_killed_study_continues_and_its_intervals_match_a_hand_computation(tmp_path):
    write_mnist(tmp_path / "data")
    out = tmp_path / "study"
    args = study_args(tmp_path / "data", out)
    runs = [out / f"d_lr={lr}-seed{seed}" for lr in ("0.0002", "0.0004") for seed in range(SEEDS)]

    # the study with 2 seeds in its own process, killed (SIGKILL: no goodbye) once two runs are finished
    first = [a if a != str(SEEDS) else "2" for a in args]
    process = subprocess.Popen([sys.executable, "-m", "ganctl", *first, "--quiet"], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while sum(spec_state(r) == "keep" for r in runs if (r / "config.json").is_file()) < 2:
        assert process.poll() is None and time.monotonic() < deadline, "the study ended or stalled before the kill"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = {r: ((r / "metrics.jsonl").read_bytes(), (r / "generator.safetensors").stat().st_mtime_ns) for r in runs
            if (r / "config.json").is_file() and spec_state(r) == "keep"}  # fmt: skip
    assert len(kept) >= 2 and not any(r.name.endswith("seed2") for r in kept)

    result = invoke(*args, "--json")  # the same study with a third seed: continued, and the new seed added
    assert result.exit_code == 0, result.output
    ran = [line for line in result.stderr.splitlines() if line.endswith(" s") and ("trained" in line or "resumed" in line)]
    assert len(ran) == len(runs) - len(kept)  # nothing run twice
    for run, (records, mtime) in kept.items():  # the finished runs untouched
        assert (run / "metrics.jsonl").read_bytes() == records
        assert (run / "generator.safetensors").stat().st_mtime_ns == mtime
    report = json.loads(result.stdout)

    # every (variant, seed) an ordinary finished run of the study; the numbers recomputed by hand
    assert [v["overrides"] for v in report["variants"]] == [{"d_lr": 0.0002}, {"d_lr": 0.0004}]
    by_hand = {}
    for variant, lr in zip(report["variants"], ("0.0002", "0.0004")):
        values = [final_g_loss(out / f"d_lr={lr}-seed{seed}") for seed in range(SEEDS)]
        mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
        half = scipy_stats.t.ppf(0.975, SEEDS - 1) * std / math.sqrt(SEEDS)
        assert variant["n"] == SEEDS and variant["values"] == pytest.approx(values, abs=0)
        assert variant["mean"] == pytest.approx(mean, rel=1e-12)
        assert variant["std"] == pytest.approx(std, rel=1e-9)
        assert variant["ci95"] == pytest.approx([mean - half, mean + half], rel=1e-9)
        by_hand[lr] = values
    welch = scipy_stats.ttest_ind(by_hand["0.0004"], by_hand["0.0002"], equal_var=False)
    difference = report["variants"][1]["difference"]
    assert difference["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert difference["diff"] == pytest.approx(np.mean(by_hand["0.0004"]) - np.mean(by_hand["0.0002"]), rel=1e-9)
    for seed in range(SEEDS):
        config = json.loads((out / f"d_lr=0.0004-seed{seed}" / "config.json").read_text())
        assert (config["seed"], config["recipe"]["d_lr"], config["study"]) == (seed, 0.0004, "study")

    # once more: nothing left to run
    again = invoke(*args, "--json")
    assert again.exit_code == 0 and "trained" not in again.stderr and json.loads(again.stdout) == report
    listing = invoke("runs", "--root", out, "--json")
    assert {r["study"] for r in json.loads(listing.stdout)} == {"study"}
    table = runner.invoke(app, ["runs", "--root", str(out)], env={"COLUMNS": "80"})
    assert "a a run of the study study" in table.stdout
    assert sum(line.startswith("a  d_lr=") for line in table.stdout.splitlines()) == len(runs)

    # the study's page in `ganctl report`: its table of means and intervals, the seeds, the curves
    page_result = invoke("report", out, "--quiet")
    assert page_result.exit_code == 0, page_result.output
    page = (out / "report.html").read_text()
    assert "Study study" in page and page.count("<img") == 2 and "src=\"http" not in page
    assert f"{report['variants'][0]['mean']:.4g}" in page and "d_lr=0.0004" in page and "baseline" in page
    lo, hi = report["variants"][1]["ci95"]
    assert f"[{lo:.4g}, {hi:.4g}]" in page


def write_study(folder: Path, **changes) -> bytes:
    base = {"dataset": "mnist", "download": False, "amp": False, "dataset_limit": 32, "batch_size": 32, "max_steps": 2, "log_every": 1}
    fields = {"name": folder.name, "arch": "mnist-dcgan", "base": base,
              "variants": [{"d_lr": 0.0002}], "seeds": 3, "metric": "g_loss", **changes}  # fmt: skip
    folder.mkdir(parents=True)
    (folder / spec.STUDY_FILE).write_text(json.dumps(spec.Study(**fields).to_json()))
    return (folder / spec.STUDY_FILE).read_bytes()


@pytest.mark.parametrize(
    "vary, extra, fragments",
    [
        ("nosuch=1,2", [], ["nosuch", "no field"]),
        ("d_lr=-1,2e-4", [], ["--d-lr must be positive", "d_lr=-1"]),
        ("d_lr=fast", [], ["d_lr must be a number", "fast"]),
        ("batch_size=16,0", [], ["--batch-size must be at least 1"]),
        ("d_lr=2e-4,4e-4", ["--seeds", "1"], ["at least 2 seeds"]),
        ("d_lr=2e-4,4e-4", ["--metric", "fid"], ["--eval-every"]),
        ("d_lr=2e-4,4e-4", ["--d-lr", "1e-4"], ["d_lr is both set for every run and varied"]),
        ("d_lr=2e-4,2e-4", [], ["gives a value twice"]),
    ],
)
def test_bad_input_is_one_line_before_any_run(tmp_path, vary, extra, fragments):
    write_mnist(tmp_path / "data")
    args = study_args(tmp_path / "data", tmp_path / "study", vary=vary)
    result = invoke(*args, *extra)
    one_line_error(result, *fragments)
    assert not (tmp_path / "study").exists()


def test_another_studys_folder_or_a_folder_of_other_files_is_refused_untouched(tmp_path):
    before = write_study(tmp_path / "study")
    one_line_error(invoke(*study_args(tmp_path / "data", tmp_path / "study")), "holds another study", "batch_size is 32")
    assert (tmp_path / "study" / spec.STUDY_FILE).read_bytes() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    one_line_error(invoke(*study_args(tmp_path / "data", tmp_path / "other")), "holds files but no study.json")
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]
    # a study file of another study (another name) for an existing folder
    (tmp_path / "lr.toml").write_text('name = "lr"\narch = "mnist-dcgan"\nseeds = 3\n[base]\ndataset = "mnist"\nbatch_size = 32\n[vary]\nd_lr = [2e-4]\n')
    one_line_error(invoke("study", "--file", tmp_path / "lr.toml", "--out", tmp_path / "study"), "holds another study", "named")
    assert (tmp_path / "study" / spec.STUDY_FILE).read_bytes() == before


def test_a_study_file_declares_base_grid_variants_and_ranges(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'arch = "mnist-dcgan"\nseeds = 4\nmetric = "d_loss_real"\n[base]\ndataset = "mnist"\nlimit = 64\n'
        '[vary]\nd_lr = [2e-4, 4e-4]\n[[variant]]\nd_lr = 1e-3\ng_lr = 1e-3\n[search]\nd_lr = {low = 1e-5, high = 1e-3, log = true}\n'
    )
    data = spec.read_toml(path)
    assert spec.fields_of(data["base"], "base") == {"dataset": "mnist", "dataset_limit": 64}
    assert spec.search_ranges(data["search"], "search")["d_lr"] == {"low": 1e-5, "high": 1e-3, "log": True, "int": False}
    path.write_text('arch = "mnist-dcgan"\n[[variant]]\nd_lr = 1e-3\nwarp = 9\n')
    one_line_error(invoke("study", "--file", path, "--out", tmp_path / "s"), "'warp' is no field")
    path.write_text('arch = "mnist-dcgan"\nseed = 3\n')
    one_line_error(invoke("study", "--file", path, "--out", tmp_path / "s"), "unknown key 'seed'")
    assert not (tmp_path / "s").exists()


def test_statistics_of_equal_seeds_and_of_two_values():
    same = stats.compare([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert (same.diff, same.ci95, same.resolved) == (0.0, (0.0, 0.0), False)
    apart = stats.compare([2.0, 2.0], [1.0, 1.0])
    assert apart.resolved and apart.p_value == 0.0
    s = stats.summarize([1.0, 3.0])
    assert s.ci95 == pytest.approx((2 - 12.706204736 * 1.0, 2 + 12.706204736 * 1.0))


def made_up_result(folder: Path) -> results.StudyResult:
    study = spec.Study("s", "cifar-dcgan", {}, [{"d_lr": 0.0002, "g_lr": 0.0002}, {"d_lr": 0.0004, "g_lr": 0.0001}], 5, "fid")
    values = [{k: 123.456789 + k * 7.123 for k in range(5)}, {k: 98.7654321 + k * 3.21 for k in range(5)}]
    variants = []
    for i, overrides in enumerate(study.variants):
        ordered = list(values[i].values())
        diff = stats.compare(ordered, list(values[0].values())) if i else None
        variants.append(results.VariantResult(spec.variant_name(overrides), overrides, values[i], stats.summarize(ordered), diff))
    return results.StudyResult(study, folder, variants, [])


@pytest.mark.parametrize("width", [80, 100])
def test_the_table_fits_the_terminal(width):
    result = made_up_result(Path("s"))
    variants = result.variants
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(results.table(result))
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines())
    mean = f"{variants[1].summary.mean:.4g}"
    assert mean in text and "baseline" in text and "yes" in text


SEARCH_FILE = """arch = "mnist-dcgan"
seeds = 2
metric = "g_loss"
[base]
dataset = "mnist"
data_dir = "{data}"
download = false
amp = false
limit = 32
batch_size = 8
max_steps = 2
log_every = 1
[search]
d_lr = {{low = 1e-5, high = 1e-3, log = true}}
"""


def search_file(tmp_path: Path) -> Path:
    write_mnist(tmp_path / "data")
    path = tmp_path / "search.toml"
    path.write_text(SEARCH_FILE.format(data=tmp_path / "data"))
    return path


def test_the_search_says_what_to_install_and_refuses_a_storage_it_cannot_open(tmp_path, monkeypatch):
    path = search_file(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    one_line_error(invoke("study", "--file", path, "--out", tmp_path / "s", "--search", "optuna"), "pip install 'ganctl[study]'")
    monkeypatch.delitem(sys.modules, "optuna")
    pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path}/no/such/folder/x.db"
    one_line_error(invoke("study", "--file", path, "--out", tmp_path / "s", "--search", "optuna", "--storage", url), "cannot open the storage", url)
    one_line_error(invoke("study", "--file", path, "--out", tmp_path / "s", "--search", "grid"), "--search takes optuna")
    path.write_text(SEARCH_FILE.format(data=tmp_path / "data").split("[search]")[0])
    one_line_error(invoke("study", "--file", path, "--out", tmp_path / "s", "--search", "optuna"), "needs ranges")
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_two_workers_share_the_database_and_run_disjoint_trials_then_the_best_are_rerun(tmp_path):
    optuna = pytest.importorskip("optuna")
    path = search_file(tmp_path)
    out = tmp_path / "s"
    command = [sys.executable, "-m", "ganctl", "study", "--file", str(path), "--out", str(out), "--search", "optuna",
               "--worker", "--trials", "3", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 120
    while not (out / "optuna.db").exists():  # the second joins a study the first has made
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    second = subprocess.Popen(command, env=env)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    searched = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'optuna.db'}")
    numbers = [t.number for t in searched.trials]
    assert sorted(numbers) == list(range(6))  # 3 each, none taken twice
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in searched.trials)
    assert sorted(p.name for p in out.glob("trial-*")) == [f"trial-{n:04d}" for n in range(6)]
    assert sorted(t.user_attrs["run"] for t in searched.trials) == [f"trial-{n:04d}" for n in range(6)]

    # the search (no --worker): one more trial, then the best two re-run over the seeds beside the baseline
    result = invoke("study", "--file", path, "--out", out, "--search", "optuna", "--trials", "1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["variants"][0]["overrides"] == {} and len(report["variants"]) == 3
    assert all(v["n"] == 2 for v in report["variants"])
    best = sorted((t for t in optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'optuna.db'}").trials
                   if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)[:2]  # fmt: skip
    assert [v["overrides"]["d_lr"] for v in report["variants"][1:]] == [float(f"{t.params['d_lr']:.3g}") for t in best]


@pytest.mark.slow
def test_jobs_run_in_worker_processes_with_the_same_results(tmp_path):
    write_mnist(tmp_path / "data")
    one = invoke(*study_args(tmp_path / "data", tmp_path / "one", "--json"))
    two = invoke(*study_args(tmp_path / "data", tmp_path / "two", "--json", "--jobs", "2"))
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert [v["values"] for v in json.loads(one.stdout)["variants"]] == [v["values"] for v in json.loads(two.stdout)["variants"]]


def test_the_plot_is_a_png_in_the_study_folder(tmp_path):
    pytest.importorskip("matplotlib")
    from ganctl.study.plot import write_plot

    path = write_plot(made_up_result(tmp_path))
    assert path == tmp_path / "study-fid.png" and path.read_bytes().startswith(b"\x89PNG")

"""benchmarks/gpu_check.py: its dry run goes through every section on the CPU, and its verdict
reads the figures the way the targets are stated."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(train: dict, default_it_s: float = 1000.0, baseline_it_s: float = 200.0, sample: dict | None = None) -> dict:
    bench = {"cifar-dcgan": {"default": {"train_it_per_s": default_it_s, "baseline_it_per_s": baseline_it_s},
                             "compiled": {"train_it_per_s": default_it_s * 1.5}}}  # fmt: skip
    return {"sections": {"bench": bench, "train": train, "sample": sample or {"images": 50_000, "seconds": 1.5}}}


def test_the_verdict_compares_each_figure_with_its_target(gpu_check):
    targets = gpu_check.verdict(report({"finished": True, "wall_s": 58.0}))
    assert targets["train_200_epochs_s"] == {"measured": 58.0, "target": 60.0, "met": True}
    assert targets["speedup_over_eager"]["measured"] == 7.5 and targets["speedup_over_eager"]["met"]  # the compiled step
    assert targets["sample_50k_s"]["met"] is True


def test_a_run_stopped_by_the_budget_is_judged_on_its_extrapolation_and_missing_figures_are_none(gpu_check):
    targets = gpu_check.verdict(report({"finished": False, "wall_s": 100.0, "extrapolated_wall_s": 240.0},
                                       default_it_s=500, baseline_it_s=200, sample={"images": 64, "seconds": 0.1}))
    assert targets["train_200_epochs_s"] == {"measured": 240.0, "target": 60.0, "met": False}
    assert targets["speedup_over_eager"]["measured"] == 3.75 and not targets["speedup_over_eager"]["met"]
    assert targets["sample_50k_s"] == {"measured": None, "target": 2.0, "met": None}  # not 50,000 images: not judged


@pytest.mark.slow
def test_the_dry_run_goes_through_every_section_on_the_cpu(gpu_check, tmp_path):
    out = tmp_path / "report.json"
    result = gpu_check.main(["--dry-run", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    sections = result["sections"]
    assert list(sections) == ["device", "peak", "bench", "sample", "train", "streaming", "losses"]
    for name, figures in sections.items():
        assert "failed" not in figures and "skipped" not in figures, (name, figures)
    assert sections["peak"]["bf16_matmul_tflop_per_s"] > 0
    cifar = sections["bench"]["cifar-dcgan"]
    assert cifar["default"]["baseline_it_per_s"] > 0 and cifar["all_ingredients"]["cost_vs_plain"] > 0
    assert sections["sample"]["images"] == 64
    assert sections["train"]["finished"] and sections["train"]["iterations"] == 4  # 32 images, batch 8: 4 an epoch
    assert sections["streaming"]["on_device_us"] > 0 and sections["streaming"]["streamed_from_memmap_us"] > 0
    curves = sections["losses"]["curves"]
    assert curves["step"] == [2, 4] and len(curves["g_loss_fast"]) == 2
    assert result["targets"].startswith("not judged")

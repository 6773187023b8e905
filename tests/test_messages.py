"""The text a newcomer reads: each message says what is true and what to do."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ganctl.errors import GanctlError
from tests.helpers import invoke, one_line_error
from tests.runfolders import train_record, write_generator, write_run

ROOT = Path(__file__).resolve().parents[1]


def test_a_junk_inception_file_is_named_in_words_not_a_number(tmp_path):
    from ganctl.metrics.inception_weights import check_inception_weights

    junk = tmp_path / "junk.pth"
    junk.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(GanctlError) as refused:
        check_inception_weights(junk)
    message = str(refused.value)
    assert message == f"{junk} is not an Inception weights file: it is not a PyTorch weights file (another format, or damaged)"
    assert not re.search(r"\(\d+\)$", message)


def test_a_missing_folder_does_not_exist_and_unknown_datasets_list_folder_path(tmp_path):
    missing = invoke("train", "--arch", "mnist-dcgan", "--dataset", f"folder:{tmp_path / 'nope'}", "--out", tmp_path / "run")
    one_line_error(missing, f"folder {tmp_path / 'nope'} does not exist")
    unknown = invoke("train", "--arch", "mnist-dcgan", "--dataset", "imagenet", "--out", tmp_path / "run")
    one_line_error(unknown, "unknown dataset 'imagenet'; known: cifar10,", "folder:PATH (a folder of images)")


def test_the_report_of_an_unfinished_run_offers_its_newest_snapshot(tmp_path):
    run = write_run(tmp_path / "r", records=[train_record(s, 10) for s in range(2, 11, 2)], final=False, grids=2)
    (run / "snapshots").mkdir()
    for epoch in (1, 2):
        write_generator(run / "snapshots" / f"generator-epoch-{epoch:04d}.safetensors", "mnist-dcgan", step=10 * epoch, epoch=float(epoch))
    assert invoke("report", run).exit_code == 0
    page = (run / "report.html").read_text()
    assert "No generator file yet" not in page
    assert "snapshots/generator-epoch-0002.safetensors" in page and "newest snapshot" in page


def test_existing_outputs_are_refused_before_torch_is_imported(tmp_path):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"keep me")
    code = f"""
import sys
from typer.testing import CliRunner
from ganctl.cli import app
for args in (["sample", "--out", {str(taken)!r}],
             ["latent-walk", "--out", {str(taken)!r}],
             ["latent-arith", "--z-file", "z.npy", "--concept", "a=0", "--expr", "a", "--out", {str(taken)!r}]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "exists" in result.stderr, (args, result.output)
assert "torch" not in sys.modules, "torch was imported before the refusal"
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert taken.read_bytes() == b"keep me"


def test_the_amp_default_and_the_processor_are_told_as_they_are():
    for page in ("sample.md", "latent-walk.md"):
        text = (ROOT / "docs" / page).read_text()
        assert "| `--amp/--no-amp` | auto: on for CUDA and for CPUs with native bf16" in text, page
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "EPYC" not in benchmarks  # the machine has AMX: an Intel Xeon


def test_no_help_text_loses_its_brackets_to_markup():
    """`pip install 'ganctl[tensorboard]'` must not print as `pip install 'ganctl'`."""
    from ganctl.cli import app

    for command in [c.name for c in app.registered_commands]:
        text = invoke(command, "--help").stdout
        assert "'ganctl'" not in text, command
    assert "ganctl[tensorboard]" in invoke("train", "--help").stdout.replace("\n", "").replace(" ", "")

"""The suite never touches the folder it is started from, nor the checkout.

A user who has used ganctl in a folder (``ganctl sample`` left samples.png there,
``latent-walk`` walk.gif, ``train`` a run under runs/ and runs/LATEST) and then runs the tests
from that folder must get the same results, and find the folder as it was. conftest's autouse
fixture makes every test work in its own tmp_path (working folder, runs root, caches), and
subprocesses inherit it. Here a representative subset of the suite, the tests that write default
outputs, read runs/LATEST or start subprocesses, runs in a subprocess started from such a folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ganctl.runfolder import layout as runs

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SUBSET = [
    # the ones that failed with "samples.png already exists" when started from a used folder
    "test_sample.py::test_n_takes_the_first_latents_of_a_z_file",
    "test_sample.py::test_pickled_or_broken_latent_files_are_refused_without_unpickling",
    # default output names, runs/LATEST
    "test_sample.py::test_default_output_is_samples_png_with_100_images",
    "test_sample.py::test_run_folder_and_latest_run",
    "test_sample.py::test_no_latest_run_is_one_line",
    "test_latent_walk.py::test_default_output_is_walk_gif",
    # a subprocess (inherits the working folder)
    "test_cli.py::test_help_is_fast_and_does_not_import_torch",
]


def snapshot(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path under ``folder``: its bytes (None for a folder) and mtime."""
    return {
        str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def git_status() -> str | None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None  # not a git checkout (an unpacked sdist): only the user's folder is checked
    result = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True)  # fmt: skip
    return result.stdout if result.returncode == 0 else None


def test_the_suite_leaves_the_folder_it_starts_in_and_the_checkout_alone(tiny, tmp_path, monkeypatch):
    user = tmp_path / "user"
    user.mkdir()
    (user / "samples.png").write_bytes(b"the user's own samples.png")
    (user / "walk.gif").write_bytes(b"the user's own walk.gif")
    monkeypatch.setenv("GANCTL_RUNS_DIR", str(user / "runs"))
    runs.set_latest(shutil.copytree(tiny, user / "runs" / "mnist-tiny"))  # a finished run, and runs/LATEST naming it
    assert (user / "runs" / "LATEST").is_file()
    before, status = snapshot(user), git_status()

    # the environment of a user's shell: no GANCTL_* variables pointing anywhere else
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANCTL_")}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *(str(TESTS / t) for t in SUBSET), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml")],
        cwd=user, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{len(SUBSET)} passed" in result.stdout, result.stdout[-2000:]

    after = snapshot(user)
    assert sorted(after) == sorted(before), f"appeared: {sorted(set(after) - set(before))}, gone: {sorted(set(before) - set(after))}"
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"changed (bytes or mtime): {changed}"
    assert git_status() == status

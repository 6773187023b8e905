"""`ganctl doctor` and the torch/torchvision check that train and eval make first."""

from __future__ import annotations

import importlib.machinery
import json

from ganctl import install_check
from tests.helpers import invoke, one_line_error


def test_doctor_checks_this_install():
    result = invoke("doctor", "--json")
    assert result.exit_code == 0, result.output
    found = {f["check"]: f for f in json.loads(result.stdout)}
    assert {"python", "torch", "torchvision", "device", "bf16", "matplotlib", "tensorboard", "inception"} <= set(found)
    assert found["torch"]["status"] == "ok" and found["torchvision"]["status"] == "ok"
    assert "its operators load" in found["torchvision"]["detail"]
    lines = invoke("doctor").stdout.splitlines()
    assert lines[0].startswith("ok   python")


def test_the_pairing_rule():
    assert install_check.paired_torchvision("2.13.0+cpu") == "0.28"
    assert install_check.paired_torchvision("2.14.1") == "0.29"
    assert install_check.paired_torchvision("1.13.1") is None


def test_a_torchvision_whose_operators_do_not_load_is_named_with_its_fix(tmp_path, monkeypatch):
    # a torchvision built for another torch: its compiled operators do not load into this one
    package = tmp_path / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_C.so").write_bytes(b"not a shared library")
    spec = importlib.machinery.ModuleSpec("torchvision", None, origin=str(package / "__init__.py"))
    monkeypatch.setattr(install_check.importlib.util, "find_spec", lambda name: spec)
    monkeypatch.setattr(install_check, "installed_version", lambda name: "0.28.0")
    problem = install_check.torchvision_problem()
    assert problem.startswith("torchvision 0.28.0 does not work with torch ")
    assert "its operators do not load" in problem and "pip install --force-reinstall --no-deps 'torchvision==" in problem

    result = invoke("doctor")
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if "torchvision" in line)
    assert line.startswith("FAIL") and "fix: install the torchvision made for torch" in result.stdout


def test_eval_refuses_a_broken_pair_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(install_check, "torchvision_problem", lambda: "torchvision 0.28.0 does not work with torch 2.13.0+cpu; fix it")
    result = invoke("eval", "--real", f"folder:{tmp_path}", "--fake", f"folder:{tmp_path}")
    one_line_error(result, "torchvision 0.28.0 does not work with torch 2.13.0+cpu")

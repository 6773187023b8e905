"""Shared fixtures: isolate registries, plugins and run folders between tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import ganctl.plugins as plugins
import ganctl.registry as registry

# The real datasets and Inception weights for the checks that need them (README, "Tests"):
# $GANCTL_TEST_DATA, else a shared/data folder beside the checkout; absent in CI.
SHARED_DATA = Path(os.environ.get("GANCTL_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
REAL_WEIGHTS = SHARED_DATA / "inception" / "pt_inception-2015-12-05-fc-zeroed.pth"
NO_REAL_DATA = "the real datasets are absent: set GANCTL_TEST_DATA to a folder of cifar-10/, mnist/, inception/ (README, Tests)"


def _import_path() -> str:
    """PYTHONPATH under which a subprocess imports the ganctl and built-in plugins this process
    imports, whatever its working folder (which no longer is the checkout: see below)."""
    import ganctl
    import ganctl_plugins

    here = [str(Path(m.__file__).resolve().parents[1]) for m in (ganctl, ganctl_plugins)]
    return os.pathsep.join(dict.fromkeys([*here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]))


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Each test works in its own tmp_path: its working folder (default outputs such as samples.png
    and walk.gif, runs/ and runs/LATEST land there, and subprocesses inherit it), its run folders
    and caches. The suite never reads or writes the folder it is started from, nor the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", _import_path())
    monkeypatch.setenv("GANCTL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GANCTL_OFFLINE", "1")  # never try a download from a test
    monkeypatch.setenv("GANCTL_CACHE_DIR", str(tmp_path / "cache"))  # FID statistics
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no weights found by accident
    monkeypatch.delenv("GANCTL_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("GANCTL_PLUGINS", raising=False)
    monkeypatch.delenv("GANCTL_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture(autouse=True)
def _cpu_without_native_bf16(monkeypatch):
    """The CPU default (``--amp`` auto) depends on the processor; tests compute the same bits on
    any machine by taking it as one without native bf16 (float32). Tests of the rule patch it back."""
    import ganctl.device

    monkeypatch.setattr(ganctl.device, "cpu_has_native_bf16", lambda: False)


@pytest.fixture
def fresh_plugins(monkeypatch):
    """An empty registry and plugin state that a test can fill; restored afterwards.

    Python caches imported modules, so the built-ins do not register again inside it: tests
    that use it register what they need through fake plugins.
    """
    plugins.ensure_loaded()  # the real plugins first, so that what is restored afterwards is complete
    registries = [r for r in vars(registry).values() if isinstance(r, registry.Registry)]
    saved = {r: dict(r._entries) for r in registries}
    for r in registries:
        r._entries.clear()
    monkeypatch.setattr(plugins, "state", plugins.PluginState())
    yield
    for r, entries in saved.items():
        r._entries.clear()
        r._entries.update(entries)


def make_distribution(root, name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]):
    """Lay out an installed distribution (a ``.dist-info`` folder) with ``ganctl.plugins`` entry points."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text("[ganctl.plugins]\n" + lines)
    return info


def random_inception_file(path: Path) -> Path:
    """torch-fidelity's FID Inception with random weights, saved as a plain state dict.

    Without the real weights (CI, a user's clone) the whole feature pipeline still runs on it:
    the resize, the batching, the caching and the agreement with torch-fidelity's own forward
    do not depend on the weights' values. He-normal convolutions keep the activations from
    vanishing through the 94 layers, so the features are well spread (std about 0.2).
    """
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    # Build the network without loading anything into it.
    with mock.patch.object(tfi.torch, "load", return_value={}), mock.patch.object(torch.nn.Module, "load_state_dict", lambda *a, **k: None):
        network = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    g = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.copy_(torch.randn(module.weight.shape, generator=g) * (2.0 / module.weight[0].numel()) ** 0.5)
    torch.save({k: v.clone() for k, v in network.state_dict().items()}, path)
    return path


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    """The shared real weights when present, else a random Inception: these tests run everywhere."""
    if REAL_WEIGHTS.is_file():
        return REAL_WEIGHTS
    return random_inception_file(tmp_path_factory.mktemp("inception") / "random-inception.pth")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """One real finished 8-step run, trained once per test module (in its own runs root, with its LATEST)."""
    from tests.runfolders import train_tiny

    root = tmp_path_factory.mktemp("tiny") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANCTL_RUNS_DIR", str(root))
        return train_tiny(root / "mnist-tiny")


@pytest.fixture
def fresh_dynamo():
    """torch.compile's caches emptied before and after a test: compiled graphs of one test's
    networks must not meet another's in the same process (a training compiles once per process)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()

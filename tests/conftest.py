"""Shared fixtures: isolate registries, plugins and run folders between tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import ganctl.plugins as plugins
import ganctl.registry as registry
from tests.helpers import REAL_WEIGHTS, make_generator, random_inception_file


def _import_path() -> str:
    """PYTHONPATH under which a subprocess imports the ganctl and built-in plugins this process
    imports, whatever its working folder (which no longer is the checkout: see below)."""
    import ganctl
    import ganctl_plugins

    here = [str(Path(m.__file__).resolve().parents[1]) for m in (ganctl, ganctl_plugins)]
    return os.pathsep.join(dict.fromkeys([*here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]))


def _isolate(mp: pytest.MonkeyPatch, folder: Path) -> None:
    """Work in ``folder``: the working folder (default outputs such as samples.png and walk.gif,
    runs/ and runs/LATEST land there, and subprocesses inherit it), the runs root and the caches."""
    mp.chdir(folder)
    mp.setenv("PYTHONPATH", _import_path())
    mp.setenv("GANCTL_RUNS_DIR", str(folder / "runs"))
    mp.setenv("GANCTL_OFFLINE", "1")  # never try a download from a test
    mp.setenv("GANCTL_CACHE_DIR", str(folder / "cache"))  # FID statistics
    mp.setenv("TORCH_HOME", str(folder / "torch-home"))  # no weights found by accident
    mp.delenv("GANCTL_INCEPTION_WEIGHTS", raising=False)
    mp.delenv("GANCTL_PLUGINS", raising=False)
    mp.delenv("GANCTL_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Each test works in its own tmp_path (see ``_isolate``): the suite never reads or writes the
    folder it is started from, nor the checkout (test_isolation checks it)."""
    _isolate(monkeypatch, tmp_path)


@pytest.fixture(autouse=True)
def _no_internal_errors(request, tmp_path_factory, monkeypatch):
    """The last-resort "internal error" handler is a net for bugs: a test whose ganctl run (in this
    process or a subprocess) ends there fails, unless it is marked ``allows_internal_error``."""
    from ganctl.commands.common import INTERNAL_ERROR_LOG

    log = tmp_path_factory.mktemp("internal-errors") / "log"
    monkeypatch.setenv(INTERNAL_ERROR_LOG, str(log))
    yield
    if log.exists() and request.node.get_closest_marker("allows_internal_error") is None:
        pytest.fail(f"a ganctl command ended in the internal-error handler (a crash, not a one-line refusal): {log.read_text()}")


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


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    """The shared real weights when present, else a random Inception: these tests run everywhere."""
    if REAL_WEIGHTS.is_file():
        return REAL_WEIGHTS
    return random_inception_file(tmp_path_factory.mktemp("inception") / "random-inception.pth")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """One real finished 8-step run (``runfolders.train_tiny``: checkpoints at steps 4 and 8), trained
    once per session in its own runs root, with its LATEST. Shared: tests only read it (or copy it)."""
    from tests.runfolders import train_tiny

    folder = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, folder)
        return train_tiny(folder / "runs" / "mnist-tiny")


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> Path:
    """An untrained mnist-dcgan generator file (``helpers.make_generator``)."""
    return make_generator(tmp_path_factory.mktemp("g") / "mnist.safetensors")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    """An untrained cifar-dcgan generator file."""
    return make_generator(tmp_path_factory.mktemp("g") / "cifar.safetensors", "cifar-dcgan")


@pytest.fixture
def fresh_dynamo():
    """torch.compile's caches emptied before and after a test: compiled graphs of one test's
    networks must not meet another's in the same process (a training compiles once per process)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()

"""Shared fixtures: isolate registries, plugins and run folders between tests."""

from __future__ import annotations

import pytest

import ganctl.plugins as plugins
import ganctl.registry as registry


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Run folders and caches of each test live in its own tmp_path, never in the checkout."""
    monkeypatch.setenv("GANCTL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GANCTL_OFFLINE", "1")  # never try a download from a test
    monkeypatch.setenv("GANCTL_CACHE_DIR", str(tmp_path / "cache"))  # FID statistics
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no weights found by accident
    monkeypatch.delenv("GANCTL_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("GANCTL_PLUGINS", raising=False)
    monkeypatch.delenv("GANCTL_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture
def fresh_plugins(monkeypatch):
    """An empty registry and plugin state that a test can fill; restored afterwards.

    Python caches imported modules, so the built-ins do not register again inside it: tests
    that use it register what they need through fake plugins.
    """
    saved = {r: dict(r._entries) for r in (registry.ARCHITECTURES, registry.LOSSES, registry.DATASETS)}
    saved_state = (list(plugins.loaded), list(plugins.failures), list(plugins._requested_files), set(plugins._loaded_files))
    for r in saved:
        r._entries.clear()
    plugins.loaded.clear()
    plugins.failures.clear()
    plugins._requested_files.clear()
    plugins._loaded_files.clear()
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    yield
    for r, entries in saved.items():
        r._entries.clear()
        r._entries.update(entries)
    plugins.loaded[:], plugins.failures[:], plugins._requested_files[:] = saved_state[0], saved_state[1], saved_state[2]
    plugins._loaded_files.clear()
    plugins._loaded_files.update(saved_state[3])


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

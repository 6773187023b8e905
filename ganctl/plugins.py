"""Finding and loading plugins.

A plugin is a Python module that registers architectures, losses or datasets when it is
imported. They come from three places:

* the ``ganctl.plugins`` entry-point group: ganctl's own built-ins (``plugins/`` in the
  repository) are declared there in ganctl's pyproject, exactly as a third-party package
  declares its own;
* loose files named with ``--plugin PATH`` (repeatable);
* loose files listed in ``$GANCTL_PLUGINS`` (separated like ``$PATH``).

Finding an entry point does not import it; loading does. A plugin that fails to load is
recorded and reported as a warning, and the rest of ganctl keeps working.
``GANCTL_DISABLE_PLUGIN_AUTOLOAD=1`` skips third-party entry points (ganctl's own
built-ins still load), so one broken package can always be switched off.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ganctl.registry import PluginSource, loading_from

ENTRY_POINT_GROUP = "ganctl.plugins"
ENV_PLUGIN_FILES = "GANCTL_PLUGINS"
ENV_DISABLE_AUTOLOAD = "GANCTL_DISABLE_PLUGIN_AUTOLOAD"
OWN_DISTRIBUTION = "ganctl"


@dataclass(frozen=True)
class PluginFailure:
    source: PluginSource
    error: str  # "ExceptionType: message"

    def __str__(self) -> str:
        return f"plugin {self.source} failed to load: {self.error}"


loaded: list[PluginSource] = []
failures: list[PluginFailure] = []
_requested_files: list[Path] = []
_loaded_files: set[Path] = set()


def request_files(paths: list[Path]) -> None:
    """Ask for plugin files to be loaded with the others (the CLI's ``--plugin``)."""
    _requested_files.extend(paths)


def discover_entry_points() -> list[EntryPoint]:
    """The entry points that autoloading would load, without importing any of them."""
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if _autoload_disabled():
        found = [ep for ep in found if ep.dist is not None and ep.dist.name == OWN_DISTRIBUTION]
    return sorted(found, key=lambda ep: (ep.dist.name != OWN_DISTRIBUTION if ep.dist else True, ep.name))


def load_plugins() -> None:
    """Load every plugin not loaded yet: entry points first, then files. Never raises."""
    if not loaded and not failures:  # entry points: only on the first call
        for ep in discover_entry_points():
            dist = ep.dist
            source = PluginSource(ep.name, dist.name if dist else None, dist.version if dist else None)
            _load(source, lambda ep=ep: ep.load())
    env_files = [Path(p) for p in os.environ.get(ENV_PLUGIN_FILES, "").split(os.pathsep) if p]
    for path in env_files + _requested_files:
        load_file(path)


def load_file(path: Path) -> None:
    """Import a loose ``.py`` file as a plugin (once per resolved path)."""
    resolved = Path(path).expanduser().resolve()
    if resolved in _loaded_files:
        return
    _loaded_files.add(resolved)
    source = PluginSource(str(path))

    def do_import() -> None:
        if not resolved.is_file():
            raise FileNotFoundError(f"no such file: {resolved}")
        digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
        module_name = f"ganctl_file_plugin_{resolved.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, resolved)
        if spec is None or spec.loader is None:
            raise ImportError(f"not a Python file: {resolved}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise

    _load(source, do_import)


def _load(source: PluginSource, do_import) -> None:
    try:
        with loading_from(source):
            do_import()
    except Exception as exc:  # a broken plugin must not take ganctl down with it
        failure = PluginFailure(source, f"{type(exc).__name__}: {exc}")
        failures.append(failure)
        print(f"ganctl: warning: {failure}", file=sys.stderr)
    else:
        loaded.append(source)


def _autoload_disabled() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in ("", "0", "false", "no")

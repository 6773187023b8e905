"""Finding and loading plugins, and remembering where each registered name came from.

A plugin is a Python module that registers architectures, losses, regularisers or datasets when it is
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

The dependency runs one way: ``ganctl.registry`` asks this module to load what is pending
(``ensure_loaded``) and whom to credit for a name (``source_for``); this module knows
nothing of the registry. All of its state is the one ``state`` object.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganctl.environment import env_flag

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "ganctl.plugins"
ENV_PLUGIN_FILES = "GANCTL_PLUGINS"
ENV_DISABLE_AUTOLOAD = "GANCTL_DISABLE_PLUGIN_AUTOLOAD"
OWN_DISTRIBUTION = "ganctl"


@dataclass(frozen=True)
class PluginSource:
    """Where a registered name came from: an entry point of a distribution, or a file."""

    plugin: str  # entry-point name, file path, or module name
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip() + f" ({self.plugin})"
        return self.plugin


@dataclass(frozen=True)
class PluginFailure:
    source: PluginSource
    error: str  # "ExceptionType: message"

    def __str__(self) -> str:
        return f"plugin {self.source} failed to load: {self.error}"


@dataclass
class PluginState:
    """Everything the loader remembers, in one place (tests swap in a fresh one)."""

    loaded: list[PluginSource] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    requested_files: list[Path] = field(default_factory=list)  # --plugin
    loaded_files: set[Path] = field(default_factory=set)  # resolved, so a file loads once
    entry_points_loaded: bool = False
    pending: bool = True  # something may be left to load: set at start and by request_files
    loading: PluginSource | None = None  # the plugin being imported now, credited for its names


state = PluginState()


def request_files(paths: list[Path]) -> None:
    """Ask for plugin files to be loaded with the others (the CLI's ``--plugin``)."""
    state.requested_files.extend(paths)
    state.pending = True


def ensure_loaded() -> None:
    """Load what is pending, once; the registry calls this before every lookup."""
    if state.pending:
        state.pending = False
        load_plugins()


def source_for(obj: Any) -> PluginSource:
    """Whom to credit for a registration: the plugin being loaded, else the object's module."""
    return state.loading or PluginSource(getattr(obj, "__module__", "?"))


@contextlib.contextmanager
def loading_from(source: PluginSource) -> Iterator[None]:
    """Credit what is registered inside the block to ``source``."""
    previous, state.loading = state.loading, source
    try:
        yield
    finally:
        state.loading = previous


def discover_entry_points() -> list[EntryPoint]:
    """The entry points that autoloading would load, without importing any of them."""
    from importlib.metadata import entry_points  # not at the top: `import ganctl` stays cheap

    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if env_flag(ENV_DISABLE_AUTOLOAD):
        found = [ep for ep in found if ep.dist is not None and ep.dist.name == OWN_DISTRIBUTION]
    return sorted(found, key=lambda ep: (ep.dist.name != OWN_DISTRIBUTION if ep.dist else True, ep.name))


def load_plugins() -> None:
    """Load every plugin not loaded yet: entry points first, then files. Never raises."""
    if not state.entry_points_loaded:
        state.entry_points_loaded = True
        for ep in discover_entry_points():
            dist = ep.dist
            source = PluginSource(ep.name, dist.name if dist else None, dist.version if dist else None)
            _load(source, ep.load)
    env_files = [Path(p) for p in os.environ.get(ENV_PLUGIN_FILES, "").split(os.pathsep) if p]
    for path in env_files + state.requested_files:
        load_file(path)


def load_file(path: Path) -> None:
    """Import a loose ``.py`` file as a plugin (once per resolved path)."""
    resolved = Path(path).expanduser().resolve()
    if resolved in state.loaded_files:
        return
    state.loaded_files.add(resolved)

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

    _load(PluginSource(str(path)), do_import)


def _load(source: PluginSource, do_import: Callable[[], object]) -> None:
    try:
        with loading_from(source):
            do_import()
    except BaseException as exc:  # a broken plugin must not take ganctl down with it, not even by sys.exit
        failure = PluginFailure(source, _describe(exc))
        state.failures.append(failure)
        print(f"ganctl: warning: {failure}", file=sys.stderr)
    else:
        state.loaded.append(source)


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message``, whatever the plugin raised."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    try:
        text = str(exc).strip()
    except Exception:  # a message that cannot even be made
        text = ""
    text = text.splitlines()[0] if text else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

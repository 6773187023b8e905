"""What ganctl reads from the environment beyond its own options: on/off flags and the cache folder.

Torch-free, so the CLI can use it before it knows which command runs.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_OFFLINE = "GANCTL_OFFLINE"
ENV_DEBUG = "GANCTL_DEBUG"
_debug = False  # set by the root option --debug


def set_debug(on: bool) -> None:
    global _debug
    _debug = on


def debug() -> bool:
    """Whether an internal error shows its traceback: --debug or $GANCTL_DEBUG."""
    return _debug or env_flag(ENV_DEBUG)


def env_flag(name: str) -> bool:
    """An on/off variable: unset, empty, ``0``, ``false`` and ``no`` (any case) are off; anything else is on."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def offline() -> bool:
    """True when $GANCTL_OFFLINE forbids every download."""
    return env_flag(ENV_OFFLINE)


def cache_home() -> Path:
    """ganctl's cache folder: $XDG_CACHE_HOME/ganctl, else ~/.cache/ganctl."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "ganctl"

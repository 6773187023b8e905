"""torchrun's environment, read and checked: where a process of a run stands, and how long it waits.

``detect`` reads RANK, LOCAL_RANK, WORLD_SIZE (and, for a world of several, MASTER_ADDR and
MASTER_PORT) and refuses a wrong value in one sentence naming the variable, before any process
waits for another; ``start_timeout`` is how long joining the others may take.
"""

from __future__ import annotations

import os

from ganctl.errors import GanctlError

MAX_WORLD = 1 << 16  # processes: far more than any run, far less than what overflows a tensor of ranks
START_TIMEOUT_ENV = "GANCTL_DIST_START_TIMEOUT"
START_TIMEOUT_S = 60.0  # how long a process waits for the others to join before it gives up


def _whole(env: dict[str, str], name: str, default: str | None, low: int, high: int) -> int:
    text = env.get(name, default) if default is not None else env[name]
    if not (text or "").strip().isdigit() or not low <= int(text) <= high:
        raise GanctlError(
            f"the environment variable {name}={text!r} must be a whole number from {low} to {high} (torchrun sets it); "
            "unset it to train with one process"
        )
    return int(text)


def detect(environ: dict[str, str] | None = None) -> tuple[int, int, int, int]:
    """(rank, local rank, world size, restart count) from torchrun's environment; one process without it.

    Every value is checked (a whole number in range; RANK below WORLD_SIZE; MASTER_ADDR and a port
    for a world of several), and a wrong one is one sentence naming the variable.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return 0, 0, 1, 0
    world = _whole(env, "WORLD_SIZE", None, 1, MAX_WORLD)
    rank = _whole(env, "RANK", "0", 0, MAX_WORLD)
    local = _whole(env, "LOCAL_RANK", str(rank), 0, MAX_WORLD)
    restart = _whole(env, "TORCHELASTIC_RESTART_COUNT", "0", 0, 1 << 31)
    if rank >= world:
        raise GanctlError(f"the environment variable RANK={rank} must be below WORLD_SIZE={world} (ranks count from 0)")
    if world > 1:
        if not env.get("MASTER_ADDR", "").strip():
            raise GanctlError(
                f"WORLD_SIZE={world} in the environment, but MASTER_ADDR is not set: start the processes with "
                "torchrun (which sets both), or unset WORLD_SIZE to train with one process"
            )
        _whole(env, "MASTER_PORT", None if "MASTER_PORT" in env else "", 1, 65535)
    return rank, local, world, restart


def check_master_address() -> None:
    """MASTER_ADDR must name a host this machine can resolve (else torch retries, printing its own
    warnings, until the timeout)."""
    import socket

    address = os.environ.get("MASTER_ADDR", "")
    try:
        socket.getaddrinfo(address, None)
    except (OSError, UnicodeError) as exc:
        raise GanctlError(f"the environment variable MASTER_ADDR={address!r} names no host this machine can reach ({exc})") from None


def start_timeout() -> float:
    """Seconds a process waits for the run's other processes to join (``$GANCTL_DIST_START_TIMEOUT``, default 60)."""
    text = os.environ.get(START_TIMEOUT_ENV, "")
    if not text:
        return START_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86400:
        raise GanctlError(f"the environment variable {START_TIMEOUT_ENV}={text!r} must be a number of seconds from 0 to 86400")
    return seconds

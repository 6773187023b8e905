"""What every command shares: its common options and their checks, error reporting, the consoles."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Optional, TypeVar

import typer
import typer.exceptions
from rich.console import Console

from ganctl.errors import GanctlError
from ganctl.options import AMP_HELP, DEVICE_HELP

F = TypeVar("F", bound=Callable[..., Any])

# Options that several commands share, declared once so they read and behave alike.
OUTPUT_PANEL, DEVICE_PANEL = "Output", "Device"
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.", rich_help_panel=OUTPUT_PANEL)]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No notes, progress bars or 'Wrote ...' lines (eval still prints its result).", rich_help_panel=OUTPUT_PANEL)]
ScaleOption = Annotated[Optional[int], typer.Option(help="Enlarge K times, nearest neighbour (crisp pixels); default: enough for the picture's smaller side to be at least 256 px (1 for --individual files).", metavar="K", rich_help_panel=OUTPUT_PANEL)]
DeviceOption = Annotated[str, typer.Option(help=DEVICE_HELP, rich_help_panel=DEVICE_PANEL)]
AmpOption = Annotated[Optional[bool], typer.Option("--amp/--no-amp", help=AMP_HELP, rich_help_panel=DEVICE_PANEL)]



def check_at_least(option: str, value: int | None, least: int = 1) -> None:
    """``--scale``, ``--batch-size``, ``--n``...: refuse a number below ``least`` (None: not given)."""
    if value is not None and value < least:
        raise GanctlError(f"{option} must be at least {least}, not {value}")


def check_not_negative(option: str, value: float | None) -> None:
    """``--padding``, ``--variations``...: refuse a negative number (None: not given)."""
    if value is not None and value < 0:
        raise GanctlError(f"{option} cannot be negative ({value})")


INT64_MAX = 2**63 - 1
SEED_LIMIT = 2**64 - 1  # what torch.manual_seed takes


def check_numbers(options: dict[str, Any]) -> None:
    """Bound every number a command is given before any work: seeds to 64 bits, other whole
    numbers to a 64-bit integer, and no infinite or NaN real number."""
    import math

    for name, value in options.items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise GanctlError(f"{option} must be a finite number, not {value}")
        elif "seed" in name:
            if not 0 <= value <= SEED_LIMIT:
                raise GanctlError(f"{option} must lie in 0 .. 2**64-1 ({SEED_LIMIT}), not {value}")
        elif abs(value) > INT64_MAX:
            raise GanctlError(f"{option} must be at most 2**63-1 ({INT64_MAX}) in size, not {value}")


def memory_budget() -> int:
    """Bytes a command may plan to hold: half of this machine's memory (8 GiB where it cannot be read)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_memory(what: str, nbytes: int, advice: str) -> None:
    """Refuse, before allocating, work whose memory is beyond the budget: one sentence with the limit."""
    budget = memory_budget()
    if nbytes > budget:
        raise GanctlError(
            f"{what} would need about {_bytes(nbytes)} of memory, more than the {_bytes(budget)} "
            f"(half of this machine's) ganctl allows itself; {advice}"
        )


def images_bytes(count: int, latent_dim: int, image_shape: tuple[int, ...], scale: int | None = 1, padding: int | None = 0) -> int:
    """Memory of ``count`` generated images held at once: latents, float32 images and the picture's pixels."""
    channels, height, width = image_shape
    scale, padding = scale or 1, padding or 0
    return count * (4 * latent_dim + 5 * channels * height * width + channels * (height + padding) * (width + padding) * scale * scale)


def _bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit in ("B", "TB") else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


@contextlib.contextmanager
def writing_outputs() -> Iterator[None]:
    """A failed write (disk full, permissions) as one sentence, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise GanctlError(f"could not write the output: {exc.strerror or exc} ({exc.filename or ''})") from None


out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def report_error(message: str) -> None:
    from rich.markup import escape

    # the message quotes the user's file names literally: "[/x]" is a name, not markup
    err.print(f"[bold red]Error:[/] {escape(message)}", markup=True, soft_wrap=True)


def handles_errors(command: F) -> F:
    """Turn a ``GanctlError`` into one line on stderr and a non-zero exit, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_numbers(kwargs)
            return command(*args, **kwargs)
        except GanctlError as exc:
            if getattr(exc, "quiet", False):  # (under torchrun: another process already said why)
                # leave a moment later than the process that says why: torchrun stops every
                # process once one has ended, and could stop that one before its line is out
                time.sleep(getattr(exc, "grace_seconds", 0.0))
            elif exc.is_error:
                report_error(str(exc))
            else:
                err.print(str(exc), markup=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("Interrupted.")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # the command line's own ways out
        except Exception as exc:
            from ganctl.environment import debug

            if debug():
                raise
            _log_internal_error(exc)
            report_error(internal_error_message(exc))
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None

    return wrapper  # type: ignore[return-value]


INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE
INTERNAL_ERROR_LOG = "GANCTL_INTERNAL_ERROR_LOG"  # a file each internal error appends a line to (the test suite's check)


def _log_internal_error(exc: BaseException) -> None:
    import os

    if path := os.environ.get(INTERNAL_ERROR_LOG):
        try:
            with open(path, "a") as f:
                f.write(f"{type(exc).__name__}: {str(exc)[:300]!r}\n")
        except OSError:
            pass


def internal_error_message(exc: BaseException) -> str:
    """One line for an exception no check of ganctl expected."""
    from ganctl.errors import BUG_REPORTS

    try:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    except Exception:  # an exception whose message itself fails
        text = ""
    text = text if len(text) <= 160 else text[:157] + "..."
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if isinstance(exc, MemoryError):
        return "ran out of memory; try a smaller --batch-size or --n"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}; rerun with --debug for the details"
    return (
        f"internal error ({what}): this is a bug in ganctl; please report it to {BUG_REPORTS} "
        "with the command and the traceback that `ganctl --debug ...` (or GANCTL_DEBUG=1) prints"
    )


def print_json(data: Any) -> None:
    import json

    # plain print, not rich: JSON must come out byte for byte, unwrapped
    print(json.dumps(data, indent=2))

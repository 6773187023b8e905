"""What every command shares: its common options and their checks, error reporting, the consoles."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from ganctl.errors import GanctlError

F = TypeVar("F", bound=Callable[..., Any])

# Options that several commands share, declared once so they read and behave alike.
OUTPUT_PANEL, DEVICE_PANEL = "Output", "Device"
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.", rich_help_panel=OUTPUT_PANEL)]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No notes, progress bars or 'Wrote ...' lines (eval still prints its result).", rich_help_panel=OUTPUT_PANEL)]
ScaleOption = Annotated[Optional[int], typer.Option(help="Enlarge K times, nearest neighbour (crisp pixels); default: enough for the picture's smaller side to be at least 256 px (1 for --individual files).", metavar="K", rich_help_panel=OUTPUT_PANEL)]
DeviceOption = Annotated[str, typer.Option(help="auto | cpu | cuda | mps (auto: CUDA, then MPS, then CPU).", rich_help_panel=DEVICE_PANEL)]
AmpOption = Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="bf16 autocast (default: on for CUDA, off for the CPU).", rich_help_panel=DEVICE_PANEL)]



def check_at_least(option: str, value: int | None, least: int = 1) -> None:
    """``--scale``, ``--batch-size``, ``--n``...: refuse a number below ``least`` (None: not given)."""
    if value is not None and value < least:
        raise GanctlError(f"{option} must be at least {least}, not {value}")


def check_not_negative(option: str, value: float | None) -> None:
    """``--padding``, ``--variations``...: refuse a negative number (None: not given)."""
    if value is not None and value < 0:
        raise GanctlError(f"{option} cannot be negative ({value})")


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
            return command(*args, **kwargs)
        except GanctlError as exc:
            report_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("Interrupted.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    import json

    # plain print, not rich: JSON must come out byte for byte, unwrapped
    print(json.dumps(data, indent=2))

"""What every command shares: error reporting and the consoles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from ganctl.errors import GanctlError

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def report_error(message: str) -> None:
    err.print(f"[bold red]Error:[/] {message}", markup=True, soft_wrap=True)


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

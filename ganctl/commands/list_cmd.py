"""``ganctl list``: what is registered, and from which plugin."""

from __future__ import annotations

from typing import Annotated

import typer

from ganctl.commands.common import handles_errors, out, print_json


@handles_errors
def _labels(kind: str, obj) -> dict:
    """A dataset's classes (None: unlabelled), whether an architecture builds conditional."""
    if kind == "datasets":
        names = getattr(obj, "class_names", None)
        return {"classes": list(names) if names else None}
    if kind == "architectures":
        return {"conditional": obj.conditional}
    return {}


def list_command(
    pattern: Annotated[str, typer.Argument(help="Only names matching this wildcard, e.g. '*dcgan'.")] = "*",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List architectures, losses, regularizers and datasets with the plugin each came from,
    which datasets carry labels and which architectures train class-conditional (--conditional).

    folder:PATH is labelled when its images sit in one subfolder per class.

    Example: ganctl list '*dcgan'
    """
    from rich.table import Table

    from ganctl import plugins
    from ganctl.registry import ARCHITECTURES, DATASETS, LOSSES, REGULARIZERS

    registries = {"architectures": ARCHITECTURES, "losses": LOSSES, "regularizers": REGULARIZERS, "datasets": DATASETS}
    listing = {
        kind: [
            {
                "name": e.name,
                "description": e.description,
                "plugin": e.source.plugin,
                "distribution": e.source.distribution,
                "version": e.source.version,
                **_labels(kind, e.obj),
            }
            for e in registry.entries(pattern)
        ]
        for kind, registry in registries.items()
    }
    failed = [{"plugin": str(f.source), "error": f.error} for f in plugins.state.failures]
    if as_json:
        print_json({**listing, "failed_plugins": failed})
        return

    for kind, rows in listing.items():
        table = Table(title=kind.capitalize(), title_justify="left", expand=False)
        table.add_column("name", style="bold")
        table.add_column("description")
        table.add_column("plugin")
        extra = {"datasets": "labels", "architectures": "--conditional"}.get(kind)
        if extra:
            table.add_column(extra)
        for row in rows:
            source = (
                f"{row['distribution']} {row['version']}" if row["distribution"] else row["plugin"]
            )
            cells = [row["name"], row["description"], source]
            if kind == "datasets":
                cells.append(f"{len(row['classes'])} classes" if row["classes"] else "none")
            elif kind == "architectures":
                cells.append("yes" if row["conditional"] else "no")
            table.add_row(*cells)
        out.print(table)
    if failed:
        table = Table(title="Plugins that failed to load", title_justify="left", title_style="red")
        table.add_column("plugin")
        table.add_column("error")
        for row in failed:
            table.add_row(row["plugin"], row["error"])
        out.print(table)

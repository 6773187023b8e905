"""``ganctl list``: what is registered, and from which plugin."""

from __future__ import annotations

from typing import Annotated

import typer

from ganctl.commands.common import handles_errors, out, print_json


LIST_DROP_ORDER = ("plugin",)


def _labels(kind: str, obj) -> dict:
    """A dataset's classes (None: unlabelled), whether an architecture builds conditional."""
    if kind == "datasets":
        names = getattr(obj, "class_names", None)
        return {"classes": list(names) if names else None}
    if kind == "architectures":
        return {"conditional": obj.conditional}
    return {}


@handles_errors
def list_command(
    pattern: Annotated[str, typer.Argument(help="Only names matching this wildcard, e.g. '*dcgan'.")] = "*",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List architectures, losses, regularizers and datasets with the plugin each came from,
    which datasets carry labels and which architectures train class-conditional (--conditional).

    folder:PATH is labelled when its images sit in one subfolder per class. Narrow terminals leave out the plugin column (--json has it).

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

    from rich.text import Text

    from ganctl.commands.tables import Column, dropped_note, fitted_table

    hidden: list[str] = []
    for kind, rows in listing.items():
        extra = {"datasets": "labels", "architectures": "--conditional"}.get(kind)
        columns = [Column("name", style="bold", whole=True), Column("description", no_wrap=False), Column("plugin")]
        columns += [Column(extra)] if extra else []
        cells = []
        for row in rows:
            source = f"{row['distribution']} {row['version']}" if row["distribution"] else row["plugin"]
            line = [Text(row["name"]), Text(row["description"]), Text(source)]
            if kind == "datasets":
                line.append(Text(f"{len(row['classes'])} classes" if row["classes"] else "none"))
            elif kind == "architectures":
                line.append(Text("yes" if row["conditional"] else "no"))
            cells.append(line)
        # narrow terminals: the plugin column goes first, then the descriptions wrap
        table, dropped = fitted_table(out, columns, cells, LIST_DROP_ORDER, title=kind.capitalize(), title_justify="left", expand=False)
        hidden += [d for d in dropped if d not in hidden]
        out.print(table)
    if hidden:
        out.print(dropped_note(hidden), markup=False, style="dim")
    if failed:
        table = Table(title="Plugins that failed to load", title_justify="left", title_style="red")
        table.add_column("plugin")
        table.add_column("error")
        for row in failed:
            table.add_row(row["plugin"], row["error"])
        out.print(table)

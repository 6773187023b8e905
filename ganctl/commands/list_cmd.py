"""``ganctl list``: what is registered, and from which plugin."""

from __future__ import annotations

from typing import Annotated

import typer

from ganctl.commands.common import handles_errors, out, print_json


@handles_errors
def list_command(
    pattern: Annotated[str, typer.Argument(help="Only names matching this wildcard, e.g. '*dcgan'.")] = "*",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List architectures, losses, regularizers and datasets with the plugin each came from.

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
        for row in rows:
            source = (
                f"{row['distribution']} {row['version']}" if row["distribution"] else row["plugin"]
            )
            table.add_row(row["name"], row["description"], source)
        out.print(table)
    if failed:
        table = Table(title="Plugins that failed to load", title_justify="left", title_style="red")
        table.add_column("plugin")
        table.add_column("error")
        for row in failed:
            table.add_row(row["plugin"], row["error"])
        out.print(table)

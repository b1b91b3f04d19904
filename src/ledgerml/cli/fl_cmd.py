"""`ledgerml fl ...`: command group (filled in by its issue; no logic here)."""

from __future__ import annotations

import typer

app = typer.Typer(help="fl commands.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    if app.registered_commands:  # an empty group would break the root command
        root.add_typer(app, name="fl")

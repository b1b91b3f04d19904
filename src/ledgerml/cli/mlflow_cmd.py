"""`ledgerml mlflow verify --uri URI`: MLflow's database against the ledger (exit 1 naming the
run and field that differ). Needs no mlflow installed: see `ledgerml.mlflow_plugin.verify`."""

from __future__ import annotations

from typing import Annotated

import typer

from ledgerml.cli._common import EXIT_VERIFY, console, err_console, print_json, project
from ledgerml.ledger.project import open_ledger
from ledgerml.mlflow_plugin.verify import verify_mlflow

app = typer.Typer(help="MLflow through LedgerML's store plugins (docs/mlflow.md).")


def register(root: typer.Typer) -> None:
    """Mount this group as `ledgerml mlflow`."""
    root.add_typer(app, name="mlflow")


@app.command("verify")
def verify(
    ctx: typer.Context,
    uri: Annotated[
        str,
        typer.Option(
            "--uri",
            help="The server's --backend-store-uri: ledgerml+sqlite:////srv/mlflow.db or "
            "ledgerml+postgresql://user@host/db (password from PGPASSWORD or ~/.pgpass)",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every recorded param, tag, metric point and alias against MLflow's database."""
    with open_ledger(project(ctx), read_only=True) as ledger:
        report = verify_mlflow(uri, ledger)
    if as_json:
        print_json(report.to_json())
    else:
        for p in report.problems:
            err_console.print(f"{p.kind}: {p.run} {p.field}: {p.detail}", highlight=False)
        verdict = "OK" if report.ok else f"FAILED ({len(report.problems)} problem(s))"
        console.print(
            f"{verdict}: {report.runs} run(s), {report.model_versions} model version(s), "
            f"{report.entries} mlflow entries compared",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(EXIT_VERIFY)

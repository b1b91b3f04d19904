"""`ledgerml verify`: recompute the whole log and check every checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from ledgerml.cli._common import EXIT_VERIFY, console, print_json, progress_bar, project
from ledgerml.ledger.project import log_verifiers, open_ledger


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Verify the ledger: every entry, subtree hash and signed checkpoint."""
        paths = project(ctx)
        verifiers = log_verifiers(paths)
        with open_ledger(paths) as ledger:
            total = ledger.size()
            with progress_bar("verifying", total, enabled=not as_json) as update:
                report = ledger.verify(verifiers, progress=update)
        if as_json:
            print_json(report.to_json())
        elif report.ok:
            console.print(
                f"[green]OK[/] {report.tree_size:,} entries, {report.checkpoints_checked:,} "
                f"checkpoints verified in {report.seconds:.2f}s; root {report.root.hex()}",
                highlight=False,
            )
        else:
            console.print(f"[red]FAILED[/] {len(report.problems)} problem(s):", highlight=False)
            for p in report.problems:
                where = []
                if p.index is not None:
                    where.append(f"index {p.index}")
                if p.checkpoint is not None:
                    where.append(f"checkpoint {p.checkpoint}")
                console.print(f"  {p.kind:<14} {', '.join(where):<28} {p.detail}", highlight=False)
        if not report.ok:
            raise typer.Exit(EXIT_VERIFY)

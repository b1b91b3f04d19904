"""`ledgerml audit trace|export|verify-bundle|report|retention`: parse, call
`ledgerml.audit`, print. No logic here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerml.cli._common import EXIT_VERIFY, console, print_json, progress_bar, project
from ledgerml.errors import InputError

app = typer.Typer(
    help="Audit: lineage traces with proofs, bundles, the report, retention.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _open_view(ctx: typer.Context, *, quiet: bool) -> Any:
    """The project's AuditView; a progress bar while the index catches up (first use)."""
    from ledgerml.audit import AuditView

    paths = project(ctx)
    with progress_bar("indexing the ledger", None, enabled=not quiet) as update:
        return AuditView.open(paths, progress=update)


def register(root: typer.Typer) -> None:
    if app.registered_commands:  # an empty group would break the root command
        root.add_typer(app, name="audit")


@app.command("trace")
def trace(
    ctx: typer.Context,
    decision_id: Annotated[str | None, typer.Argument(help="A decision ID.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Trace a model (CID or promoted alias).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decision -> model -> run -> data sets -> checks -> approvals -> promotion -> anchors,
    each entry with its inclusion proof against the newest signed checkpoint."""
    from ledgerml.audit import trace_decision, trace_model

    if (decision_id is None) == (model is None):
        raise InputError("give either a DECISION_ID or --model", field="DECISION_ID")
    with _open_view(ctx, quiet=as_json) as view:
        if decision_id is not None:
            result = trace_decision(view, decision_id)
        else:
            result = trace_model(view, model or "")
    if as_json:
        print_json(result.to_json())
    else:
        cp = result.checkpoint
        console.print(
            f"[bold]{result.kind} {result.subject}[/] (model {result.model_cid})", highlight=False
        )
        for s in result.steps:
            mark = "[green]proved[/]" if s.entry.verified else "[red]NOT PROVED[/]"
            console.print(
                f"  {s.entry.index:>9}  {s.step:<22} {mark}  {s.summary}", highlight=False
            )
        sig = "signature OK" if cp.signature_ok else f"BAD: {cp.problem}"
        console.print(
            f"checkpoint {cp.origin} size {cp.size:,} root {cp.root.hex()} ({sig}); "
            f"{result.seconds * 1e3:.1f} ms",
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(EXIT_VERIFY)


@app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("-o", "--output", help="A new directory, or FILE.zip.")],
    model: Annotated[
        str | None, typer.Option("--model", help="A model's lineage (CID or alias).")
    ] = None,
    decisions: Annotated[
        str | None,
        typer.Option(
            "--decisions",
            help="FROM..TO: ledger indices (TO exclusive) or RFC 3339 dates/times.",
        ),
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every entry.")] = False,
    artifacts: Annotated[
        bool, typer.Option("--artifacts", help="Include the artifacts' bytes from the store.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write an audit bundle: entries, proofs, checkpoint, keys, receipts, artifact CIDs."""
    from ledgerml.audit.bundle import export_bundle, select_all, select_decisions, select_model

    if sum(x is not None and x is not False for x in (model, decisions, everything)) != 1:
        raise InputError("give exactly one of --model, --decisions, --all", field="selection")
    with _open_view(ctx, quiet=as_json) as view:
        if model is not None:
            sel = select_model(view, model)
        elif decisions is not None:
            sel = select_decisions(view, decisions)
        else:
            sel = select_all(view)
        result = export_bundle(view, sel, out, artifacts=artifacts)
    if as_json:
        print_json(result.to_json())
    else:
        console.print(
            f"wrote {result.path}: {result.entries:,} entries, {result.files:,} files, proofs "
            f"against checkpoint {result.tree_size:,} ({result.root[:16]}…); "
            f"{result.receipts} receipt(s), {result.artifacts_included} artifact(s)",
            highlight=False,
        )
        if result.receipts_note:
            console.print(f"note: {result.receipts_note}", highlight=False)


@app.command("verify-bundle")
def verify_bundle_cmd(
    path: Annotated[Path, typer.Argument(help="A bundle directory or zip.")],
    vkey: Annotated[
        list[str] | None,
        typer.Option("--vkey", help="Pin the log's verifier key (name+hash+key); repeatable."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Witness policy: the checkpoint needs its quorum."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a bundle offline: every file's digest, signatures, proofs, receipts, CIDs."""
    from ledgerml.audit.bundle import verify_bundle
    from ledgerml.witness.policy import load_policy

    pol = load_policy(str(policy)) if policy is not None else None
    report = verify_bundle(path, tuple(vkey or ()), pol)
    if as_json:
        print_json(report.to_json())
    elif report.ok:
        console.print(
            f"[green]OK[/] {report.entries:,} entries proved against checkpoint "
            f"{report.tree_size:,} ({report.root}); {report.receipts_checked} receipt(s), "
            f"{report.artifacts_checked} artifact(s) checked",
            highlight=False,
        )
    else:
        for p in report.problems:
            console.print(f"[red]FAILED[/] {p.file}: {p.detail}", highlight=False)
    if not report.ok:
        raise typer.Exit(EXIT_VERIFY)


@app.command("retention")
def retention(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Evaluate at this RFC 3339 date/time (default: now)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Report, per event type, the retention period, what is due, and the prunable prefix."""
    from ledgerml.audit.retention import parse_when, retention_status

    when = parse_when(as_of) if as_of else None
    with _open_view(ctx, quiet=as_json) as view:
        status = retention_status(view, now=when)
    if as_json:
        print_json(status.to_json())
        return
    console.print(
        f"retention as of {status.as_of}; tree size {status.tree_size:,}", highlight=False
    )
    for t in status.types:
        keep = "forever" if t.keep_days is None else f"{t.keep_days} days"
        console.print(
            f"  {t.event_type:<22} {t.count:>9,}  keep {keep:<10} due {t.due:>9,}  {t.basis}",
            highlight=False,
        )
    console.print(
        f"{status.due:,} entries due; a tlog-tiles minimum index of {status.prunable_below:,} "
        "would be allowed (report only: nothing is deleted, the tree is never rewritten)",
        highlight=False,
    )
    if status.vault_subjects is not None:
        console.print(
            f"vault: {status.vault_subjects:,} data subjects; {status.erasures_recorded:,} "
            "erasures recorded in the ledger",
            highlight=False,
        )


@app.command("report")
def report(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="HTML file (default <project>/reports/audit-report.html)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the self-contained HTML audit report (inventory, lineage, metrics, fairness,
    drift, compliance, approvals, anchoring, retention, verification)."""
    from ledgerml.audit.report import write_report

    if out is not None and out.suffix.lower() not in (".html", ".htm"):
        raise InputError("the report is HTML: give a .html file", field="-o")
    path, data = write_report(project(ctx), out)
    summary = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "models": len(data.models),
        "verify_ok": data.verify["ok"],
        "checkpoint": {"size": data.checkpoint.size, "root": data.checkpoint.root.hex()},
        "seconds": round(data.seconds, 2),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"wrote {path} ({summary['bytes']:,} bytes): {summary['models']} model(s), log "
            f"{'verifies' if data.verify['ok'] else 'DOES NOT VERIFY'} at checkpoint "
            f"{data.checkpoint.size:,}",
            highlight=False,
        )
    if not data.verify["ok"]:
        raise typer.Exit(EXIT_VERIFY)

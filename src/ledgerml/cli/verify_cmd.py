"""`ledgerml verify`: recompute the whole log, check every checkpoint, and check the log
against every checkpoint anchored on chain (a rewritten, re-signed log fails there), the
head copy kept outside ledger.db, and checkpoints auditors kept (`--since`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ledgerml.cli._common import (
    EXIT_VERIFY,
    as_path,
    console,
    err_console,
    print_json,
    progress_bar,
    project,
)
from ledgerml.cli.log_cmd import read_input_text
from ledgerml.ledger.project import log_verifiers, open_ledger
from ledgerml.mlops import has_deployment, trusted_roots


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        skip_anchors: Annotated[
            bool,
            typer.Option(
                "--skip-anchors", help="Verify the local log only, not the on-chain anchors."
            ),
        ] = False,
        since: Annotated[
            list[str] | None,
            typer.Option(
                "--since",
                help="A checkpoint (signed note file) you kept: the log must extend it.",
            ),
        ] = None,
        policy: Annotated[
            str | None,
            typer.Option(
                "--policy",
                help="A witness policy (C2SP tlog-policy): the newest cosigned checkpoint must "
                "carry its quorum, and the log must extend it.",
            ),
        ] = None,
    ) -> None:
        """Verify the ledger: every entry, subtree hash, signed checkpoint and on-chain anchor."""
        kept = [read_input_text(as_path(f), "--since", 64 * 1024) for f in since or []]
        n_since = len(kept)
        paths = project(ctx)
        cosigners: tuple[str, ...] = ()
        if policy is not None:  # fails closed (exit 1) without a quorum-cosigned checkpoint
            from ledgerml.witness.policy import load_policy
            from ledgerml.witness.publisher import newest_cosigned

            note, cosigners = newest_cosigned(paths, load_policy(str(as_path(policy))))
            kept.append(note)
        verifiers = log_verifiers(paths)
        deployed = has_deployment(paths)
        # the ledger first: a missing or emptied ledger.db fails here, before anything reads it
        with open_ledger(paths, read_only=True) as ledger:
            if skip_anchors:
                trusted = []
            else:
                if deployed and not as_json:
                    err_console.print(
                        "reading anchored checkpoints from the chain…", highlight=False
                    )
                trusted = trusted_roots(paths)  # fails closed: VerificationError, exit 1
            total = ledger.size()
            with progress_bar("verifying", total, enabled=not as_json) as update:
                report = ledger.verify(verifiers, trusted=trusted, progress=update, since=kept)
        anchors: dict[str, object] = {
            "checked": report.trusted_checked,
            "skipped": skip_anchors,
            "deployment": deployed,
        }
        if as_json:
            witnessed = {"witnesses": {"cosigners": list(cosigners)}} if policy else {}
            print_json(report.to_json() | {"anchors": anchors} | witnessed)
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
        if not as_json:
            if skip_anchors:
                console.print("anchors skipped (--skip-anchors): local log only", highlight=False)
            elif deployed:
                console.print(
                    f"{report.trusted_checked} anchored checkpoint(s) checked on chain",
                    highlight=False,
                )
            else:
                console.print("no chain deployment: no anchors to check", highlight=False)
            if report.head_copy_size is not None:
                console.print(
                    f"head copy checked (tree size {report.head_copy_size:,})",
                    highlight=False,
                )
            if n_since:
                console.print(f"{n_since} --since checkpoint(s) checked", highlight=False)
            if policy:
                console.print(
                    f"witness quorum met by {', '.join(cosigners) or 'none needed'}; the log "
                    "extends the newest cosigned checkpoint",
                    highlight=False,
                )
        if not report.ok:
            raise typer.Exit(EXIT_VERIFY)

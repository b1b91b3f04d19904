"""`ledgerml init`: create a project folder with keys and an empty ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from ledgerml.cli._common import console, print_json, project
from ledgerml.ledger.project import init_project, log_keys


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        ctx: typer.Context,
        pq: Annotated[
            bool, typer.Option("--pq", help="Also sign checkpoints with ML-DSA-44 (post-quantum).")
        ] = False,
        origin: Annotated[
            str | None, typer.Option(help="Log origin / key name (default: a random one).")
        ] = None,
        ledger_url: Annotated[
            str,
            typer.Option(
                "--ledger-url",
                help="'sqlite:' (ledger.db here, default) or postgresql://USER@HOST/DB "
                "(one log shared by several workers and hosts).",
            ),
        ] = "sqlite:",
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Create a LedgerML project (default ./.ledgerml) with its signing keys."""
        paths = project(ctx, must_exist=False)
        init_project(paths.home, post_quantum=pq, origin=origin, ledger_url=ledger_url)
        keys = log_keys(paths)
        verifier_keys = [v.vkey() for v in keys.note_verifiers]
        info = {
            "home": str(paths.home),
            "origin": keys.origin,
            "post_quantum": pq,
            "verifier_keys": verifier_keys,
            "api_keys_file": str(paths.api_keys_file),
        }
        if as_json:
            print_json(info)
        else:
            console.print(f"Initialised LedgerML project in {paths.home}")
            console.print(f"log origin: {keys.origin}")
            for v in verifier_keys:
                console.print(f"verifier key: {v}", soft_wrap=True, highlight=False)
            console.print(
                f"API keys (scorer, auditor, admin) for `ledgerml serve`: {paths.api_keys_file} "
                "(0600); print one with `ledgerml keys api --role scorer`",
                soft_wrap=True,
                highlight=False,
            )

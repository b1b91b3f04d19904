"""`ledgerml ledger …`: where the ledger lives (`migrate --to URL` between drivers).

No logic here: `ledgerml.ledger.migrate` copies and verifies; this prints the result and
what to change in config.toml (the URL without its password).
"""

from __future__ import annotations

from typing import Annotated

import typer

from ledgerml.cli._common import console, print_json, project
from ledgerml.errors import VerificationError
from ledgerml.ledger.migrate import migrate
from ledgerml.ledger.postgres import redact_url
from ledgerml.ledger.project import head_copy_path, ledger_url, log_keys

ledger_app = typer.Typer(
    help="Where the ledger lives: move it between drivers.", no_args_is_help=True
)


@ledger_app.command("migrate")
def migrate_cmd(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="postgresql://USER@HOST/DB (an empty schema), or 'sqlite:' for this project's "
            "ledger.db (must not exist) or sqlite:PATH.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Copy this project's ledger byte for byte to --to and verify the copy there.

    config.toml is not changed: set `[ledger] url` to the target afterwards."""
    paths = project(ctx)
    keys = log_keys(paths)
    here = f"sqlite:{paths.ledger_db}"
    source = ledger_url(paths)
    source = here if source == "sqlite:" else source
    target = here if to == "sqlite:" else to
    head = head_copy_path(paths) if target == here else None  # that file's head copy
    moved = migrate(
        source, target, origin=keys.origin, verifiers=keys.note_verifiers, head_copy=head
    )
    if as_json:
        print_json(moved.to_json())
    else:
        console.print(
            f"copied {moved.entries:,} entries, {moved.tiles:,} tiles and {moved.checkpoints:,} "
            f"checkpoints to {moved.target} in {moved.seconds:.1f}s",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if not moved.report.ok:
        kinds = ", ".join(sorted({p.kind for p in moved.report.problems}))
        raise VerificationError(f"the copy does not verify ({kinds}); keep using the source")
    if not as_json:
        url = "sqlite:" if target == here else redact_url(target)
        console.print(
            f"the copy verifies (root {moved.report.root.hex()}); to use it, set in "
            f'config.toml: [ledger] url = "{url}"',
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

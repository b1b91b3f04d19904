"""`ledgerml store …`: the content-addressed artifact store from the shell.

Thin wrapper over `ledgerml.storage`; errors are raised as `InputError` /
`IntegrityError` and mapped to exit codes 2 / 1 by `ledgerml.cli.main`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import Progress

from ledgerml.cli._common import as_path, console, err_console, print_json, project
from ledgerml.errors import IntegrityError
from ledgerml.storage import BlockStore, open_store

app = typer.Typer(
    help="Content-addressed artifact store (CIDv1, same as `ipfs add --cid-version 1`).",
    no_args_is_help=True,
)

#: Files at least this big get a progress bar on stderr (about a second of work or more).
PROGRESS_FROM = 256 << 20

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CidArg = Annotated[str, typer.Argument(help="CIDv1 (bafk…/bafy…) or CIDv0 (Qm…).")]


def register(root: typer.Typer) -> None:
    """Mount this group as `ledgerml store`."""
    root.add_typer(app, name="store")


def _store(ctx: typer.Context) -> BlockStore:
    return open_store(project(ctx))


@app.command("add")
def add(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="File to store.")],
    no_pin: Annotated[bool, typer.Option("--no-pin", help="Do not pin the file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store a file; print its CID."""
    store = _store(ctx)
    src = as_path(path)
    total = src.stat().st_size if src.is_file() else 0
    if total < PROGRESS_FROM:
        result = store.add_file(src, pin=not no_pin)
    else:
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task(f"adding {src.name}", total=total)
            result = store.add_file(src, pin=not no_pin, progress=lambda n: bar.advance(task, n))
    if as_json:
        print_json({"cid": result.cid, "size": result.size})
    else:
        console.print(f"added {result.cid} {result.size}", highlight=False)


@app.command("cat")
def cat(ctx: typer.Context, cid: CidArg) -> None:
    """Write a stored file's bytes to stdout, only after every block of it verified."""
    _store(ctx).write_verified(cid, sys.stdout.buffer)


@app.command("verify")
def verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Re-hash every block; exit 1 listing the CIDs that are corrupt or missing."""
    store = _store(ctx)
    bad = store.verify()
    blocks = sum(1 for _ in store.iter_blocks())
    if as_json:
        print_json({"ok": not bad, "blocks": blocks, "corrupt": bad})
        if bad:
            raise typer.Exit(1)
        return
    if bad:
        raise IntegrityError(f"{len(bad)} block(s) corrupt or missing: " + ", ".join(bad))
    console.print(f"ok: {blocks} blocks verified", highlight=False)


@app.command("pin")
def pin(ctx: typer.Context, cid: CidArg) -> None:
    """Pin a stored file (also on the IPFS node, when configured)."""
    console.print(f"pinned {_store(ctx).pin(cid)}", highlight=False)


@app.command("unpin")
def unpin(ctx: typer.Context, cid: CidArg) -> None:
    """Remove a pin."""
    console.print(f"unpinned {_store(ctx).unpin(cid)}", highlight=False)


@app.command("ls")
def ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List stored files with size and pin state."""
    rows = _store(ctx).ls()
    if as_json:
        print_json([{"cid": r.cid, "size": r.size, "pinned": r.pinned} for r in rows])
        return
    for r in rows:
        console.print(f"{r.cid} {r.size} {'pinned' if r.pinned else ''}".rstrip(), highlight=False)

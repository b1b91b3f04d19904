"""`ledgerml log …`: append, show, export, checkpoint and prove ledger entries."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ledgerml.cli._common import console, parse_json, print_json, project
from ledgerml.errors import InputError
from ledgerml.ledger import merkle
from ledgerml.ledger.log import Checkpoint
from ledgerml.ledger.project import open_ledger

log_app = typer.Typer(help="Append to and read the ledger.", no_args_is_help=True)


def _read_jsonl(path: str) -> list[tuple[str, Any]]:
    """Parse every line before anything is appended: all or nothing."""
    if path == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise InputError(f"no such file {path}", field="--jsonl") from None
        except UnicodeDecodeError:
            raise InputError(f"{path} is not UTF-8 text", field="--jsonl") from None
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        obj = parse_json(line, field=f"line {number}")
        if not isinstance(obj, dict) or set(obj) - {"type", "body"} or "type" not in obj:
            raise InputError(
                'each line must be {"type": ..., "body": {...}}', field=f"line {number}"
            )
        items.append((obj["type"], obj.get("body", {}), number))
    if not items:
        raise InputError("no entries in the file", field="--jsonl")
    return [(t, b) for t, b, _ in items]


@log_app.command("append")
def append(
    ctx: typer.Context,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Event type, e.g. run.started")
    ] = None,
    body: Annotated[str | None, typer.Option("--body", help="The body as a JSON object.")] = None,
    jsonl: Annotated[
        str | None, typer.Option("--jsonl", help='File of {"type","body"} lines ("-" = stdin).')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Append one entry, or every line of a JSONL file atomically."""
    if jsonl is not None and (event_type is not None or body is not None):
        raise InputError("use either --type/--body or --jsonl, not both", field="--jsonl")
    paths = project(ctx)
    if jsonl is not None:
        items = _read_jsonl(jsonl)
    else:
        if event_type is None:
            raise InputError("missing --type (or use --jsonl)", field="--type")
        items = [(event_type, parse_json(body if body is not None else "{}", field="--body"))]
    with open_ledger(paths) as ledger:
        if len(items) == 1:
            # validate before opening a transaction; the index is durable on return
            indices = [ledger.append(items[0][0], items[0][1])]
        else:
            try:
                indices = ledger.append_many(items)
            except InputError as exc:  # name the file line, not the item number
                raise InputError(str(exc).replace("item ", "entry #", 1), field="--jsonl") from None
        size = ledger.size()
    if as_json:
        print_json({"indices": indices, "tree_size": size})
    else:
        first, last = indices[0], indices[-1]
        where = f"index {first}" if first == last else f"indices {first}..{last}"
        console.print(
            f"appended {len(indices)} entr{'y' if len(indices) == 1 else 'ies'} at {where}"
        )


@log_app.command("show")
def show(
    ctx: typer.Context,
    start: Annotated[int, typer.Option("--from", min=0, help="First index.")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show entries from the ledger."""
    with open_ledger(project(ctx)) as ledger:
        rows = list(ledger.entries(start, limit))
        size = ledger.size()
    if as_json:
        print_json(
            {
                "tree_size": size,
                "entries": [
                    {"index": i, "leaf_hash": merkle.leaf_hash(e).hex(), "entry": orjson.loads(e)}
                    for i, e in rows
                ],
            }
        )
        return
    console.print(f"tree size {size}", highlight=False)
    for i, e in rows:
        obj = orjson.loads(e)
        body = orjson.dumps(obj["body"]).decode()
        if len(body) > 100:
            body = body[:97] + "..."
        console.print(f"{i:>8}  {obj['time']}  {obj['type']:<20} {body}", highlight=False)


@log_app.command("export")
def export(
    ctx: typer.Context,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON lines (the only format).")] = True,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="File (default stdout).")
    ] = None,
    start: Annotated[int, typer.Option("--from", min=0)] = 0,
) -> None:
    """Export entries as {"index", "entry": base64 of the exact bytes, "leaf_hash"} lines."""
    out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        with open_ledger(project(ctx)) as ledger:
            for i, e in ledger.entries(start):
                line = {
                    "index": i,
                    "entry": base64.b64encode(e).decode(),
                    "leaf_hash": merkle.leaf_hash(e).hex(),
                }
                out.write(orjson.dumps(line) + b"\n")
    finally:
        if output:
            out.close()
        else:
            out.flush()


@log_app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the signed checkpoint (C2SP signed note) of the current tree."""
    with open_ledger(project(ctx)) as ledger:
        note = ledger.checkpoint()
    if as_json:
        cp = Checkpoint.from_note(note)
        print_json({"note": note, "origin": cp.origin, "tree_size": cp.size, "root": cp.root.hex()})
    else:
        sys.stdout.write(note)


@log_app.command("prove")
def prove(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(min=0, help="Leaf index.")],
    size: Annotated[
        int | None, typer.Option("--size", min=1, help="Tree size (default: current).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = True,
) -> None:
    """Inclusion proof of entry INDEX in the tree of --size (RFC 9162)."""
    with open_ledger(project(ctx)) as ledger:
        proof = ledger.inclusion_proof(index, size)
    print_json(proof.to_json())


@log_app.command("consistency")
def consistency(
    ctx: typer.Context,
    old: Annotated[int, typer.Argument(min=0, help="Older tree size.")],
    new: Annotated[int, typer.Argument(min=0, help="Newer tree size.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = True,
) -> None:
    """Consistency proof between two tree sizes (RFC 9162)."""
    with open_ledger(project(ctx)) as ledger:
        proof = ledger.consistency_proof(old, new)
    print_json(proof.to_json())


def register(app: typer.Typer) -> None:
    app.add_typer(log_app, name="log")

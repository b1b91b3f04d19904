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
from ledgerml.ledger.events import refuse_reserved
from ledgerml.ledger.log import MAX_INDEX, Checkpoint
from ledgerml.ledger.project import open_ledger, restore_head_copy

#: Deepest JSON nesting `log append` accepts (deeper input would exhaust the recursion
#: of the JSON parser and canonicaliser; no event body needs more than a few levels).
MAX_DEPTH = 64

log_app = typer.Typer(help="Append to and read the ledger.", no_args_is_help=True)


def _depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse(text: str, field: str) -> Any:
    """Strict JSON, refused up front when nested deeper than `MAX_DEPTH`."""
    if _depth(text) > MAX_DEPTH:
        raise InputError(f"JSON nested deeper than {MAX_DEPTH} levels", field=field)
    return parse_json(text, field=field)


def read_input_text(path: Path, field: str, limit: int | None = None) -> str:
    """A user's input file as UTF-8 text; every way it cannot be read is an `InputError`
    naming `field` (exit 2), never a traceback."""
    try:
        with path.open("rb") as fh:
            data = fh.read() if limit is None else fh.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"no such file {path}", field=field) from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a file", field=field) from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field=field) from None
    if limit is not None and len(data) > limit:
        raise InputError(f"{path} is larger than {limit:,} bytes", field=field)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", field=field) from None


def _read_jsonl(path: str) -> list[tuple[str, Any]]:
    """Parse every line before anything is appended: all or nothing."""
    if path == "-":
        lines = sys.stdin.read().splitlines()
    else:
        lines = read_input_text(Path(path), "--jsonl").splitlines()
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        obj = _parse(line, field=f"line {number}")
        if not isinstance(obj, dict) or set(obj) - {"type", "body"} or "type" not in obj:
            raise InputError(
                'each line must be {"type": ..., "body": {...}}', field=f"line {number}"
            )
        items.append((obj["type"], obj.get("body", {}), number))
    if not items:
        raise InputError("no entries in the file", field="--jsonl")
    for event_type, _, number in items:  # before anything is written
        refuse_reserved([(event_type, None)], field=f"--jsonl line {number}")
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
        refuse_reserved([(event_type, None)], field="--type")
        items = [(event_type, _parse(body if body is not None else "{}", field="--body"))]
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
    start: Annotated[int, typer.Option("--from", min=0, max=MAX_INDEX, help="First index.")] = 0,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_INDEX, help="How many entries.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show entries from the ledger."""
    with open_ledger(project(ctx), read_only=True) as ledger:
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
    start: Annotated[int, typer.Option("--from", min=0, max=MAX_INDEX)] = 0,
) -> None:
    """Export entries as {"index", "entry": base64 of the exact bytes, "leaf_hash"} lines."""
    out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        with open_ledger(project(ctx), read_only=True) as ledger:
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
    """Print the signed checkpoint (C2SP signed note) of the current tree.

    On read-only media, the newest stored checkpoint (nothing can be signed there)."""
    with open_ledger(project(ctx), read_only=None) as ledger:
        note = ledger.checkpoint()
    if as_json:
        cp = Checkpoint.from_note(note)
        print_json({"note": note, "origin": cp.origin, "tree_size": cp.size, "root": cp.root.hex()})
    else:
        sys.stdout.write(note)


@log_app.command("prove")
def prove(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(min=0, max=MAX_INDEX, help="Leaf index.")],
    size: Annotated[
        int | None,
        typer.Option("--size", min=1, max=MAX_INDEX, help="Tree size (default: current)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = True,
) -> None:
    """Inclusion proof of entry INDEX in the tree of --size (RFC 9162)."""
    with open_ledger(project(ctx), read_only=True) as ledger:
        proof = ledger.inclusion_proof(index, size)
    print_json(proof.to_json())


@log_app.command("consistency")
def consistency(
    ctx: typer.Context,
    old: Annotated[int, typer.Argument(min=0, max=MAX_INDEX, help="Older tree size.")],
    new: Annotated[int, typer.Argument(min=0, max=MAX_INDEX, help="Newer tree size.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = True,
) -> None:
    """Consistency proof between two tree sizes (RFC 9162)."""
    with open_ledger(project(ctx), read_only=True) as ledger:
        proof = ledger.consistency_proof(old, new)
    print_json(proof.to_json())


@log_app.command("restore-head")
def restore_head(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write a missing head copy from the newest stored checkpoint, once the whole log
    verifies (logs created before head copies existed, or a new `[ledger] head_copy`)."""
    path, report = restore_head_copy(project(ctx))
    if as_json:
        print_json({"head_copy": str(path), "tree_size": report.tree_size})
    else:
        console.print(f"head copy written to {path} (tree size {report.tree_size})")


def register(app: typer.Typer) -> None:
    from ledgerml.cli.ledger_cmd import ledger_app

    app.add_typer(log_app, name="log")
    app.add_typer(ledger_app, name="ledger")

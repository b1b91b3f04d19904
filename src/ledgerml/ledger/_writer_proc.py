"""A writer process for bulk appends: SQLite work on the second core.

A thread cannot overlap Python work with SQLite inserts well (each inserted row
takes the GIL back), so large `append_many` calls stream prepared entries to
this child process, which inserts them and keeps the tiles while the caller
prepares the next chunk. Everything stays one transaction: the entries become
durable together at COMMIT, or not at all.

Protocol on stdin (binary, after one JSON header line with the database path,
origin and signing keys): `B` begins; `C` + u32 n + n×u32 lengths + the entry
bytes + n×32-byte leaf hashes adds a chunk; `E` commits; `A` rolls back.
Exactly one reply on stdout follows `E` or `A`: `K` + u64 first index + u64 new
tree size, `k` (rolled back), or `X` + u32 length + an error message. End of
input rolls back an open transaction, so a killed caller leaves nothing half
written.
"""

from __future__ import annotations

import array
import contextlib
import json
import sqlite3
import struct
import sys
from typing import BinaryIO

from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import load_private_pem

HASH = 32


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError("caller went away")
    return data


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    from ledgerml.ledger.edge import _Edge
    from ledgerml.ledger.sqlite import Ledger

    header = json.loads(inp.readline())
    signers = [
        NoteSigner(k["name"], int(k["sig_type"]), load_private_pem(k["pem"].encode()))
        for k in header["keys"]
    ]
    ledger = Ledger(
        header["db"],
        origin=header["origin"],
        signers=signers,
        actor=header.get("actor", ""),
        checkpoint_every_batch=bool(header["checkpoint_every_batch"]),
        create=False,
        head_copy=header.get("head_copy"),
    )
    conn = ledger._connect()
    edge: _Edge | None = None
    first = index = 0
    dirty: dict[tuple[int, int], bytes] = {}
    error: str | None = None
    in_tx = False
    try:
        while True:
            op = inp.read(1)
            if not op:
                return
            if op == b"B":
                error, dirty = None, {}
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    in_tx = True
                    row = conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()
                    size = int(row[0])
                    if edge is None or edge.size != size:
                        edge = ledger._checked_edge(conn, size)
                    first = index = size
                except Exception as exc:  # reported at E/A, so the stream stays in step
                    error = f"{type(exc).__name__}: {exc}"
            elif op == b"C":
                (n,) = struct.unpack(">I", _read_exact(inp, 4))
                lengths = array.array("I")
                lengths.frombytes(_read_exact(inp, 4 * n))
                if sys.byteorder != "big":
                    lengths.byteswap()
                blob = _read_exact(inp, sum(lengths))
                hashes = _read_exact(inp, HASH * n)
                if error is not None or edge is None:
                    continue
                try:
                    rows, offset = [], 0
                    for k, length in enumerate(lengths):
                        rows.append((index + k, blob[offset : offset + length]))
                        offset += length
                    conn.executemany("INSERT INTO entries(idx, entry) VALUES (?, ?)", rows)
                    index += n
                    dirty.update(edge.append(hashes))
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
            elif op in (b"E", b"A"):
                if op == b"E" and error is None and edge is not None and in_tx:
                    try:
                        conn.executemany(
                            "INSERT OR REPLACE INTO tiles(level, idx, hashes) VALUES (?, ?, ?)",
                            [(lv, ix, h) for (lv, ix), h in dirty.items()],
                        )
                        conn.execute("UPDATE meta SET value=? WHERE key='size'", (str(edge.size),))
                        signed = None
                        if ledger.checkpoint_every_batch:
                            signed = ledger._store_checkpoint(conn, edge.size, edge.root())
                        conn.execute("COMMIT")
                        in_tx = False
                        if signed is not None:
                            ledger._advance_head(signed)
                        out.write(b"K" + struct.pack(">QQ", first, edge.size))
                        out.flush()
                        continue
                    except Exception as exc:
                        error = f"{type(exc).__name__}: {exc}"
                if in_tx:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    in_tx = False
                edge = None  # the edge may hold rolled-back hashes: reload next time
                if op == b"A" and error is None:
                    out.write(b"k")
                else:
                    message = (error or "nothing to commit").encode()
                    out.write(b"X" + struct.pack(">I", len(message)) + message)
                out.flush()
            else:
                raise ValueError(f"unknown op {op!r}")
    except EOFError:
        return
    finally:
        if in_tx:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        conn.close()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)

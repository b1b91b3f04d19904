"""Moving a ledger between drivers, byte for byte: SQLite -> PostgreSQL and back.

    moved = migrate("sqlite:/p/.ledgerml/ledger.db", "postgresql://app@db/ledger",
                    origin=keys.origin, verifiers=keys.note_verifiers)
    moved.report.ok      # the target verifies: every entry, tile and signed checkpoint

The rows are copied as stored (entries, tiles, checkpoints, meta), never re-signed or
re-encoded, so the root and every checkpoint are the same and still verify with the log's
keys. The source is read in one snapshot up to its tree size (entries still in flight on a
busy PostgreSQL source are not part of that tree). The target must be empty: a SQLite
file that does not exist yet, or a PostgreSQL schema without a ledger; the copy is one
transaction, so a failed migration leaves no half-written ledger there.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerml.crypto.note import NoteVerifier
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger.head import HeadCopy
from ledgerml.ledger.postgres import PostgresLedger, _psycopg, is_postgres_url, redact_url
from ledgerml.ledger.sqlite import Ledger, connect_read_only
from ledgerml.ledger.values import VerifyReport

PAGE = 10_000


@dataclass(frozen=True)
class Snapshot:
    """A ledger's rows as stored, read in one transaction."""

    meta: dict[str, str]
    size: int
    tiles: list[tuple[int, int, bytes]]
    checkpoints: list[tuple[int, bytes, str, str]]
    entries: Iterator[list[tuple[int, bytes]]]  # pages, in index order, idx < size


@dataclass(frozen=True)
class Migration:
    source: str
    target: str
    entries: int
    tiles: int
    checkpoints: int
    seconds: float
    report: VerifyReport

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "entries": self.entries,
            "tiles": self.tiles,
            "checkpoints": self.checkpoints,
            "seconds": round(self.seconds, 3),
            "verify": self.report.to_json(),
        }


def _sqlite_path(url: str) -> Path:
    path = url.removeprefix("sqlite:")
    if not path:
        raise InputError("must be sqlite:PATH or postgresql://…", field="--to")
    return Path(path)


@contextlib.contextmanager
def _read(url: str) -> Iterator[Snapshot]:
    """The source's rows in one snapshot (read-only on either driver)."""
    if is_postgres_url(url):
        pg = _psycopg()
        conn = pg.connect(url, autocommit=True)
        conn.isolation_level = pg.IsolationLevel.REPEATABLE_READ
        try:
            with conn.transaction():
                yield _snapshot(conn, "%s", named=True)
        finally:
            conn.close()
        return
    path = _sqlite_path(url)
    if not path.is_file():
        raise InputError(f"{path} is not a ledger file", field="source")
    conn = connect_read_only(path)
    try:
        conn.execute("BEGIN")
        yield _snapshot(conn, "?", named=False)
    finally:
        conn.close()


def _snapshot(conn: Any, mark: str, *, named: bool) -> Snapshot:
    meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta").fetchall()}
    size = int(meta.get("size", "0"))
    tiles = [
        (int(lv), int(ix), bytes(h))
        for lv, ix, h in conn.execute("SELECT level, idx, hashes FROM tiles").fetchall()
    ]
    checkpoints = [
        (int(s), bytes(r), str(n), str(c))
        for s, r, n, c in conn.execute(
            "SELECT size, root, note, created FROM checkpoints ORDER BY size"
        ).fetchall()
    ]

    def pages() -> Iterator[list[tuple[int, bytes]]]:
        cur = conn.cursor(name="ledgerml_migrate") if named else conn.cursor()
        cur.execute(f"SELECT idx, entry FROM entries WHERE idx < {mark} ORDER BY idx", (size,))
        while rows := cur.fetchmany(PAGE):
            yield [(int(i), bytes(e)) for i, e in rows]

    return Snapshot(meta, size, tiles, checkpoints, pages())


def _write_postgres(url: str, origin: str, snap: Snapshot) -> int:
    PostgresLedger(url, origin=origin).close()  # the schema (and an empty log's meta)
    pg = _psycopg()
    count = 0
    with pg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("LOCK TABLE entries, tiles, checkpoints, meta, seq IN EXCLUSIVE MODE")
        (have,) = conn.execute(
            "SELECT (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM checkpoints)"
        ).fetchone()
        if have:
            raise InputError(f"{redact_url(url)} already holds a ledger", field="--to")
        with conn.cursor().copy("COPY entries (idx, entry) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "bytea"])
            for page in snap.entries:
                for row in page:
                    cp.write_row(row)
                count += len(page)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO tiles(level, idx, hashes) VALUES (%s, %s, %s)", snap.tiles)
            cur.executemany(
                "INSERT INTO checkpoints(size, root, note, created) VALUES (%s, %s, %s, %s)",
                snap.checkpoints,
            )
            cur.executemany(
                "INSERT INTO meta(key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                list(snap.meta.items()),
            )
        conn.execute("UPDATE seq SET next=%s WHERE id=0", (snap.size,))
    return count


def _write_sqlite(path: Path, origin: str, snap: Snapshot) -> int:
    if path.exists():
        raise InputError(f"{path} exists; migrate writes a new ledger file only", field="--to")
    Ledger(path, origin=origin, use_writer_process=False).close()  # the schema
    count = 0
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for page in snap.entries:
                conn.executemany("INSERT INTO entries(idx, entry) VALUES (?, ?)", page)
                count += len(page)
            conn.executemany("INSERT INTO tiles(level, idx, hashes) VALUES (?, ?, ?)", snap.tiles)
            conn.executemany(
                "INSERT INTO checkpoints(size, root, note, created) VALUES (?, ?, ?, ?)",
                snap.checkpoints,
            )
            conn.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(snap.meta.items())
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except BaseException:
        conn.close()
        path.unlink(missing_ok=True)  # nothing half-written: the file did not exist before
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise
    conn.close()
    return count


def migrate(
    source: str,
    target: str,
    *,
    origin: str,
    verifiers: Sequence[NoteVerifier],
    head_copy: Path | None = None,
) -> Migration:
    """Copy the ledger at `source` to the empty `target` (URLs: sqlite:PATH or
    postgresql://…) and verify the copy; `head_copy`: the head copy a SQLite target uses."""
    if source == target:
        raise InputError("the target is the source", field="--to")
    started = time.perf_counter()
    with _read(source) as snap:
        if snap.meta.get("origin") != origin:
            raise InputError(f"the source's origin is not {origin!r}", field="origin")
        if is_postgres_url(target):
            count = _write_postgres(target, origin, snap)
            shown = redact_url(target)
        else:
            count = _write_sqlite(_sqlite_path(target), origin, snap)
            shown = target
    if count != snap.size:
        raise VerificationError(f"copied {count} entries, the source's tree has {snap.size}")
    if not is_postgres_url(target) and head_copy is not None and snap.checkpoints:
        newest = snap.checkpoints[-1]
        HeadCopy(head_copy).advance(newest[2], newest[0])
    if is_postgres_url(target):
        copy: Ledger | PostgresLedger = PostgresLedger(target, origin=origin, create=False)
    else:
        copy = Ledger(
            _sqlite_path(target), origin=origin, create=False, read_only=True, head_copy=head_copy
        )
    with copy:
        report = copy.verify(verifiers)
    return Migration(
        redact_url(source),
        shown,
        count,
        len(snap.tiles),
        len(snap.checkpoints),
        time.perf_counter() - started,
        report,
    )

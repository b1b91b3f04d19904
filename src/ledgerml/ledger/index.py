"""A rebuildable secondary index of the ledger: (event type, key) -> ledger index.

    index = LedgerIndex.open(paths.home / "index.db", paths.ledger_db)
    index.refresh()                                   # scan only entries after the watermark
    index.find("decision-42", "decision.recorded")    # -> [12013]
    index.by_type("approval.granted")                 # -> [9, 10]
    index.latest_checkpoint()                         # -> (size, note) of the newest signed one

Why: an auditor's question ("this decision: which model, trained on what,
approved by whom?") must not scan a million entries. The index is a sidecar
SQLite file next to `ledger.db`; it is derived data, so it runs with
`synchronous=NORMAL` and is rebuilt from scratch whenever it does not match the
ledger (its watermark is beyond the tree, or the leaf hash it remembers for the
entry below the watermark differs). It is never trusted for *content*: callers
read the entry bytes from the ledger and prove them against a signed checkpoint.

Keys per type are listed in `KEY_FIELDS`; a list-valued field gives one row per
item. Unknown and custom types are indexed by type only.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

#: (event type) -> body fields whose values are lookup keys.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "dataset.registered": ("cid", "name"),
    "run.started": ("run_id", "dataset_cids"),
    "run.finished": ("run_id", "model_cid"),
    "model.registered": ("cid", "run_id", "name"),
    "evaluation.recorded": ("model_cid",),
    "model.documented": ("model_cid",),
    "compliance.checked": ("model_cid", "tx_hash", "policy"),
    "approval.granted": ("model_cid", "tx_hash"),
    "model.promoted": ("model_cid", "tx_hash", "alias"),
    "decision.recorded": ("decision_id",),
    "drift.detected": ("model_cid", "tx_hash"),
    "retrain.requested": ("model_cid", "tx_hash"),
    "fl.round": ("aggregate_cid", "tx_hash"),
    "subject.erased": ("subject_commitment",),
    "checkpoint.anchored": ("tx_hash",),
    "policy.registered": ("policy_id", "tx_hash"),
    "model.enrolled": ("model_cid", "tx_hash", "policy"),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS types (
    type TEXT NOT NULL, idx INTEGER NOT NULL, time TEXT NOT NULL,
    PRIMARY KEY (type, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys (
    key TEXT NOT NULL, type TEXT NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (key, type, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

BATCH = 20_000


@dataclass(frozen=True)
class RefreshStats:
    """What one `refresh` did: entries scanned, whether it rebuilt, how long it took."""

    scanned: int
    rebuilt: bool
    watermark: int
    seconds: float


def index_keys(event_type: str, body: dict) -> list[str]:
    """The lookup keys of one entry body (strings only, de-duplicated, in field order)."""
    out: list[str] = []
    for name in KEY_FIELDS.get(event_type, ()):
        value = body.get(name)
        for v in value if isinstance(value, list) else (value,):
            if isinstance(v, str) and v and v not in out:
                out.append(v)
    return out


class _SqliteRows:
    """What the index reads from a ledger.db, through its own read-only connection."""

    def __init__(self, ledger_db: str | Path) -> None:
        self.conn = sqlite3.connect(
            f"file:{Path(ledger_db)}?mode=ro", uri=True, check_same_thread=False
        )
        self.conn.execute("PRAGMA busy_timeout=30000")

    def size(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()
        return int(row[0]) if row else 0

    def entry(self, idx: int) -> bytes | None:
        row = self.conn.execute("SELECT entry FROM entries WHERE idx=?", (idx,)).fetchone()
        return None if row is None else bytes(row[0])

    def rows(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        sql = "SELECT idx, entry FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx"
        return [(int(i), bytes(e)) for i, e in self.conn.execute(sql, (lo, hi)).fetchall()]

    def newest_checkpoint(self) -> tuple[int, str] | None:
        row = self.conn.execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def close(self) -> None:
        self.conn.close()


class _DriverRows:
    """The same reads through a ledger driver's public methods (PostgreSQL)."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    def size(self) -> int:
        return int(self.ledger.size())

    def entry(self, idx: int) -> bytes | None:
        from ledgerml.errors import InputError

        try:
            return bytes(self.ledger.entry(idx))
        except InputError:
            return None

    def rows(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        return list(self.ledger.entries(lo, hi - lo))

    def newest_checkpoint(self) -> tuple[int, str] | None:
        from ledgerml.crypto.note import parse_checkpoint_head, parse_note
        from ledgerml.errors import VerificationError

        try:
            note = self.ledger.newest_checkpoint()
        except VerificationError:
            return None
        return parse_checkpoint_head(parse_note(note).text)[1], note

    def close(self) -> None:
        """The driver belongs to the caller."""


class LedgerIndex:
    """The sidecar index of one ledger; one instance per thread or process."""

    def __init__(self, conn: sqlite3.Connection, ledger: _SqliteRows | _DriverRows) -> None:
        self._conn = conn
        self._ledger = ledger

    @classmethod
    def open(cls, index_db: str | Path, ledger_db: str | Path | Any) -> LedgerIndex:
        """Open (creating) the index beside a ledger: a ledger.db path (opened read-only), or
        a ledger driver object (PostgreSQL: read through its public methods)."""
        conn = sqlite3.connect(index_db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # derived data: the ledger can rebuild it
        conn.executescript(_SCHEMA)
        if isinstance(ledger_db, (str, Path)):
            return cls(conn, _SqliteRows(ledger_db))
        return cls(conn, _DriverRows(ledger_db))

    def close(self) -> None:
        self._conn.close()
        self._ledger.close()

    def __enter__(self) -> LedgerIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- maintenance ------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def watermark(self) -> int:
        """How many leading ledger entries the index covers."""
        return int(self._meta("watermark") or 0)

    def _ledger_size(self) -> int:
        return self._ledger.size()

    def _leaf_hex(self, idx: int) -> str | None:
        data = self._ledger.entry(idx)
        return None if data is None else hashlib.sha256(b"\x00" + data).hexdigest()

    def _matches_ledger(self, watermark: int, size: int) -> bool:
        if watermark > size:
            return False
        return watermark == 0 or self._leaf_hex(watermark - 1) == self._meta("last_leaf")

    def refresh(self, progress: Callable[[int, int], None] | None = None) -> RefreshStats:
        """Index entries appended since the watermark (rebuilding if the ledger changed)."""
        started = time.perf_counter()
        size = self._ledger_size()
        mark = self.watermark
        rebuilt = False
        if not self._matches_ledger(mark, size):
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM types")
            self._conn.execute("DELETE FROM keys")
            self._conn.execute("DELETE FROM meta")
            self._conn.execute("COMMIT")
            mark, rebuilt = 0, True
        start = mark
        loads = orjson.loads
        while mark < size:
            rows = self._ledger.rows(mark, min(size, mark + BATCH))
            if not rows:
                break
            type_rows: list[tuple[str, int, str]] = []
            key_rows: list[tuple[str, str, int]] = []
            last = b""
            for idx, data in rows:
                if idx != mark:  # a gap: leave the rest for `verify` to report
                    break
                try:
                    doc = loads(data)
                    etype, body, when = str(doc["type"]), doc["body"], str(doc["time"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    etype, body, when = "?malformed", {}, ""
                type_rows.append((etype, idx, when))
                if isinstance(body, dict):
                    key_rows.extend((k, etype, idx) for k in index_keys(etype, body))
                last = bytes(data)
                mark += 1
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO types VALUES (?,?,?)", type_rows)
            self._conn.executemany("INSERT OR REPLACE INTO keys VALUES (?,?,?)", key_rows)
            self._conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?,?)",
                [
                    ("watermark", str(mark)),
                    ("last_leaf", hashlib.sha256(b"\x00" + last).hexdigest()),
                ],
            )
            self._conn.execute("COMMIT")
            if progress is not None:
                progress(mark, size)
            if len(type_rows) < len(rows):
                break
        return RefreshStats(mark - start, rebuilt, mark, time.perf_counter() - started)

    # -- queries ----------------------------------------------------------------------

    def find(self, key: str, types: str | Iterable[str] | None = None) -> list[int]:
        """Ledger indices whose body has `key` in an indexed field, optionally by type."""
        if types is None:
            rows = self._conn.execute("SELECT idx FROM keys WHERE key=? ORDER BY idx", (key,))
        else:
            wanted = [types] if isinstance(types, str) else list(types)
            marks = ",".join("?" for _ in wanted)
            rows = self._conn.execute(
                f"SELECT idx FROM keys WHERE key=? AND type IN ({marks}) ORDER BY idx",
                (key, *wanted),
            )
        return [int(r[0]) for r in rows]

    def by_type(
        self, event_type: str, *, start: int = 0, limit: int | None = None, newest: bool = False
    ) -> list[int]:
        """Ledger indices of one event type, oldest first (or newest first)."""
        order = "DESC" if newest else "ASC"
        sql = f"SELECT idx FROM types WHERE type=? AND idx >= ? ORDER BY idx {order}"
        args: tuple[object, ...] = (event_type, start)
        if limit is not None:
            sql += " LIMIT ?"
            args = (*args, limit)
        return [int(r[0]) for r in self._conn.execute(sql, args)]

    def in_time_range(self, event_type: str, start: str, end: str) -> list[int]:
        """Indices of one type whose entry time t satisfies start <= t < end (RFC 3339 UTC)."""
        rows = self._conn.execute(
            "SELECT idx FROM types WHERE type=? AND time >= ? AND time < ? ORDER BY idx",
            (event_type, start, end),
        )
        return [int(r[0]) for r in rows]

    def type_summary(self) -> list[tuple[str, int, str, str]]:
        """(type, count, oldest time, newest time) for every indexed type."""
        rows = self._conn.execute(
            "SELECT type, COUNT(*), MIN(time), MAX(time) FROM types GROUP BY type ORDER BY type"
        )
        return [(str(t), int(n), str(a), str(b)) for t, n, a, b in rows]

    def older_than(self, event_type: str, cutoff: str) -> tuple[int, int | None]:
        """(count, highest index) of entries of a type whose time is before `cutoff`."""
        row = self._conn.execute(
            "SELECT COUNT(*), MAX(idx) FROM types WHERE type=? AND time < ?", (event_type, cutoff)
        ).fetchone()
        return int(row[0]), (None if row[1] is None else int(row[1]))

    def first_at_or_after(self, cutoff: str, types: Sequence[str]) -> int | None:
        """The lowest index of the given types with time ≥ cutoff (None when there is none)."""
        marks = ",".join("?" for _ in types)
        row = self._conn.execute(
            f"SELECT MIN(idx) FROM types WHERE type IN ({marks}) AND time >= ?",
            (*types, cutoff),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- reading the ledger beside it ---------------------------------------------------

    def entry(self, idx: int) -> bytes:
        """The exact bytes of entry `idx`, read from the ledger (not from the index)."""
        data = self._ledger.entry(idx)
        if data is None:
            raise KeyError(idx)
        return data

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(tree size, signed note) of the newest checkpoint the ledger holds."""
        return self._ledger.newest_checkpoint()

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
entry below the watermark differs, or it was built with other `KEY_FIELDS`). It is
never trusted for *content*: callers read the entry bytes from the ledger and
prove them against a signed checkpoint (or re-check the parsed body). `verify`
recomputes every row from the ledger (O(ledger)) for a reader that must also
trust the index's *absences* (the MLflow plugin, once per process).

Keys per type are listed in `KEY_FIELDS`; a list-valued field gives one row per
item. Unknown and custom types are indexed by type only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
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
    # written by the MLflow store plugins (ledgerml.mlflow_plugin), looked up by them per call
    "mlflow.run_created": ("run_id",),
    "mlflow.inputs_logged": ("run_id",),
    "mlflow.logged_model": ("model_id",),
    "mlflow.artifact_stored": ("path",),  # `find_prefix`: a version's folder
    "mlflow.model_version": ("name",),
    "mlflow.alias": ("name",),
    "mlflow.stage": ("name",),
}

#: Which keys an index.db holds: an index built with other `KEY_FIELDS` is rebuilt.
KEYS_DIGEST = hashlib.sha256(orjson.dumps(KEY_FIELDS, option=orjson.OPT_SORT_KEYS)).hexdigest()

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


@dataclasses.dataclass(frozen=True)
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


_MOD = 1 << 256


def _rows_of(data: bytes, loads: Callable[[bytes], Any]) -> tuple[str, str, list[str]]:
    """(type, time, lookup keys) of one entry's bytes; a malformed entry is "?malformed"."""
    try:
        doc = loads(data)
        etype, body, when = str(doc["type"]), doc["body"], str(doc["time"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "?malformed", "", []
    return etype, when, index_keys(etype, body) if isinstance(body, dict) else []


def _row_int(a: str, b: str | int, c: str | int) -> int:
    """One index row as an integer, summed (mod 2**256) into an order-free multiset digest."""
    text = f"{a}\x00{b}\x00{c}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(text).digest(), "big")


def _merged(stored: list[int], pending: list[int]) -> list[int]:
    """Indices found in index.db and in `top_up`'s memory, once each, in log order (both may
    hold an entry another reader indexed meanwhile)."""
    return sorted(set(stored).union(pending)) if pending else stored


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

    def some(self, indices: list[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for k in range(0, len(indices), 500):  # under SQLite's limit on parameters
            chunk = indices[k : k + 500]
            marks = ",".join("?" for _ in chunk)
            sql = f"SELECT idx, entry FROM entries WHERE idx IN ({marks})"
            out.update((int(i), bytes(e)) for i, e in self.conn.execute(sql, chunk))
        return out

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

    def some(self, indices: list[int]) -> dict[int, bytes]:
        out = {}
        for i in indices:
            data = self.entry(i)
            if data is not None:
                out[i] = data
        return out

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
        # `top_up`: entries past the stored watermark `_base`, read and keyed but not written
        self._pending: list[tuple[int, str, list[str]]] = []
        self._pending_leaf = ""
        self._base = -1

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
        return None if data is None else _leaf_hex_of(data)

    def _matches_ledger(self, watermark: int, size: int, meta: dict[str, str]) -> bool:
        if watermark > size or meta.get("keys") != KEYS_DIGEST:
            return False
        return watermark == 0 or self._leaf_hex(watermark - 1) == meta.get("last_leaf")

    def _all_meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def _clear(self) -> None:
        self._pending, self._base = [], -1
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("DELETE FROM types")
        self._conn.execute("DELETE FROM keys")
        self._conn.execute("DELETE FROM meta")
        self._conn.execute("INSERT INTO meta VALUES ('keys', ?)", (KEYS_DIGEST,))
        self._conn.execute("COMMIT")

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> RefreshStats:
        """Drop every row and index the whole ledger again."""
        self._clear()
        return dataclasses.replace(self.refresh(progress), rebuilt=True)

    def refresh(self, progress: Callable[[int, int], None] | None = None) -> RefreshStats:
        """Index entries appended since the watermark (rebuilding if the ledger changed)."""
        started = time.perf_counter()
        size = self._ledger_size()
        meta = self._all_meta()
        mark = int(meta.get("watermark") or 0)
        rebuilt = False
        if not self._matches_ledger(mark, size, meta):
            self._clear()
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
            batch_start = mark
            for idx, data in rows:
                if idx != mark:  # a gap: leave the rest for `verify` to report
                    break
                etype, when, keys = _rows_of(data, loads)
                type_rows.append((etype, idx, when))
                key_rows.extend((k, etype, idx) for k in keys)
                last = bytes(data)
                mark += 1
            self._conn.execute("BEGIN IMMEDIATE")
            if self.watermark != batch_start:
                # Another reader cleared the index or indexed further meanwhile: its work.
                # The watermark only ever extends rows that are all there.
                self._conn.execute("ROLLBACK")
                mark = batch_start
                break
            self._conn.executemany("INSERT OR REPLACE INTO types VALUES (?,?,?)", type_rows)
            self._conn.executemany("INSERT OR REPLACE INTO keys VALUES (?,?,?)", key_rows)
            if type_rows:
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

    def top_up(self, max_pending: int = 256) -> None:
        """Bring `find` and `find_prefix` up to the ledger's current size, like `refresh`,
        but keep up to `max_pending` new entries' keys in this instance's memory instead of
        writing them to index.db each time: for a reader that looks up after every few
        appends (the MLflow plugin). The same check as `refresh`, on the newest entry this
        covers: the leaf of the last entry held in memory (or, holding none, of the stored
        watermark's) must still be the ledger's, else what it holds is dropped (rebuilt).
        """
        size = self._ledger_size()
        meta = self._all_meta()
        mark = int(meta.get("watermark") or 0)
        end = mark + len(self._pending)
        # the newest entry held stands for the stored watermark's entry, as that one does
        # in `refresh` for all below it: one leaf compared either way; it is read with the
        # new entries (one query)
        keep = (
            bool(self._pending)
            and mark == self._base  # else another reader wrote further (or it is the first)
            and end <= size
            and meta.get("keys") == KEYS_DIGEST
        )
        rows: list[tuple[int, bytes]] = []
        if keep:
            rows = self._ledger.rows(end - 1, min(size, end + max_pending))
            held = rows[0] if rows and rows[0][0] == end - 1 else None
            keep = held is not None and _leaf_hex_of(held[1]) == self._pending_leaf
            rows = rows[1:]
        if not keep:
            self._pending = []
            if not self._matches_ledger(mark, size, meta):
                mark = self.refresh().watermark
            self._base = mark
            end = mark
            rows = self._ledger.rows(end, min(size, end + max_pending)) if end < size else []
        if end < size:
            loads = orjson.loads
            last = b""
            for idx, data in rows:
                if idx != end:
                    break
                etype, _, keys = _rows_of(data, loads)
                self._pending.append((idx, etype, keys))
                last, end = bytes(data), end + 1
            if last:
                self._pending_leaf = _leaf_hex_of(last)
        if len(self._pending) >= max_pending or end < size:
            self._pending, self._base = [], -1
            self.refresh()

    def verify(self) -> str | None:
        """None when the index holds exactly the rows the ledger's first `watermark` entries
        give (no row missing, changed or extra), else the first difference found.

        Reads the whole ledger and index (O(ledger)): the check for a reader that acts on
        what the index does *not* name; `refresh` only checks the ledger did not change.
        """
        size = self._ledger_size()
        meta = self._all_meta()
        mark = int(meta.get("watermark") or 0)
        if not self._matches_ledger(mark, size, meta):
            return f"index (watermark {mark}) does not match the ledger (size {size})"
        want_types = want_keys = 0
        n_types = n_keys = 0
        loads = orjson.loads
        lo = 0
        while lo < mark:
            rows = self._ledger.rows(lo, min(mark, lo + BATCH))
            if not rows:
                return f"ledger has no entry {lo} below the index watermark {mark}"
            for idx, data in rows:
                if idx != lo:
                    return f"ledger has no entry {lo} below the index watermark {mark}"
                etype, when, keys = _rows_of(data, loads)
                want_types += _row_int(etype, idx, when)
                n_types += 1
                for k in keys:
                    want_keys += _row_int(k, etype, idx)
                    n_keys += 1
                lo += 1
        have_types = have_keys = 0
        m_types = m_keys = 0
        # rows at or above the watermark are another reader's refresh under way
        sql = "SELECT type, idx, time FROM types WHERE idx < ?"
        for etype, idx, when in self._conn.execute(sql, (mark,)):
            have_types += _row_int(str(etype), int(idx), str(when))
            m_types += 1
        for key, etype, idx in self._conn.execute(
            "SELECT key, type, idx FROM keys WHERE idx < ?", (mark,)
        ):
            have_keys += _row_int(str(key), str(etype), int(idx))
            m_keys += 1
        if (m_types, have_types % _MOD) != (n_types, want_types % _MOD):
            return f"index types: {m_types} rows, the ledger gives {n_types} (or they differ)"
        if (m_keys, have_keys % _MOD) != (n_keys, want_keys % _MOD):
            return f"index keys: {m_keys} rows, the ledger gives {n_keys} (or they differ)"
        return None

    # -- queries ----------------------------------------------------------------------

    def find(self, key: str, types: str | Iterable[str] | None = None) -> list[int]:
        """Ledger indices whose body has `key` in an indexed field, optionally by type."""
        if types is None:
            rows = self._conn.execute("SELECT idx FROM keys WHERE key=? ORDER BY idx", (key,))
            pending = [i for i, _, keys in self._pending if key in keys]
        else:
            wanted = [types] if isinstance(types, str) else list(types)
            marks = ",".join("?" for _ in wanted)
            rows = self._conn.execute(
                f"SELECT idx FROM keys WHERE key=? AND type IN ({marks}) ORDER BY idx",
                (key, *wanted),
            )
            pending = [i for i, t, keys in self._pending if t in wanted and key in keys]
        return _merged([int(r[0]) for r in rows], pending)

    def find_prefix(self, prefix: str, event_type: str) -> list[int]:
        """Ledger indices of `event_type` with an indexed key starting with `prefix` (a seek
        on the keys' primary key, not a scan), in log order."""
        if not prefix or ord(prefix[-1]) >= 0xD7FF:
            raise ValueError(f"find_prefix: {prefix!r} is empty or ends past U+D7FE")
        # every key k with prefix <= k < the prefix with its last character incremented
        # (UTF-8 keeps code point order, and SQLite compares the UTF-8 bytes)
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._conn.execute(
            "SELECT DISTINCT idx FROM keys WHERE key >= ? AND key < ? AND type = ? ORDER BY idx",
            (prefix, upper, event_type),
        )
        pending = [
            i
            for i, t, keys in self._pending
            if t == event_type and any(k.startswith(prefix) for k in keys)
        ]
        return _merged([int(r[0]) for r in rows], pending)

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

    def entries(self, indices: list[int]) -> list[tuple[int, bytes]]:
        """(index, exact bytes) of each of `indices` the ledger holds, read from the ledger in
        one query (SQLite), in the order given."""
        if not indices:
            return []
        found = self._ledger.some(list(indices))
        return [(i, found[i]) for i in indices if i in found]

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(tree size, signed note) of the newest checkpoint the ledger holds."""
        return self._ledger.newest_checkpoint()


def _leaf_hex_of(data: bytes) -> str:
    """RFC 9162 leaf hash of an entry's bytes, in hex (what the index's `last_leaf` holds)."""
    return hashlib.sha256(b"\x00" + data).hexdigest()

"""Reading and hashing a range of entries: the first pass of `verify`.

Kept in a module with light imports (no pydantic) because `verify` runs it in
worker processes on large logs, one per core, and each worker imports it.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import Any, Protocol

import orjson

#: The event types of DESIGN.md (mirrored by the typed bodies in events.py).
KNOWN_TYPES = frozenset(
    {
        "dataset.registered",
        "run.started",
        "run.finished",
        "model.registered",
        "evaluation.recorded",
        "backtest.recorded",
        "compliance.checked",
        "approval.granted",
        "model.promoted",
        "decision.recorded",
        "drift.detected",
        "retrain.requested",
        "fl.round",
        "subject.erased",
        "checkpoint.anchored",
        "policy.registered",
        "model.enrolled",
        "model.documented",
        "fl.bank_enrolled",
        "fl.update_rejected",
        "key.rotated",
    }
)
CUSTOM_TYPE = re.compile(r"^x\.[a-z0-9][a-z0-9_.-]{0,62}$")
#: Written by the MLflow store plugins only (ledgerml.mlflow_plugin; reserved in events.py).
MLFLOW_TYPE = re.compile(r"^mlflow\.[a-z][a-z0-9_]{0,62}$")
_ENTRY_KEYS = frozenset({"v", "type", "time", "actor", "body", "sigs"})

# (kind, detail, index)
RawProblem = tuple[str, str, int]


def is_known_type(event_type: str) -> bool:
    return (
        event_type in KNOWN_TYPES
        or bool(CUSTOM_TYPE.match(event_type))
        or bool(MLFLOW_TYPE.match(event_type))
    )


def check_entry(data: bytes) -> str | None:
    """Why an entry's bytes are not a well-formed entry, or None."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    if type(obj) is not dict or obj.keys() != _ENTRY_KEYS:
        return "not an entry object with v, type, time, actor, body, sigs"
    if obj["v"] != 1:
        return f"unknown entry version {obj['v']!r}"
    event_type = obj["type"]
    if type(event_type) is not str or not is_known_type(event_type):
        return f"unknown event type {event_type!r}"
    return None


def scan_range(db_path: str, lo: int, hi: int | None) -> tuple[bytes, list[RawProblem], int]:
    """Leaf hashes (concatenated) of entries lo ≤ idx < hi, their problems, and
    the index after the last entry seen. Gaps are reported as `missing`."""
    uri = db_path if db_path.startswith("file:") else f"file:{db_path}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        sql = "SELECT idx, entry FROM entries WHERE idx >= ?"
        args: tuple[int, ...] = (lo,)
        if hi is not None:
            sql += " AND idx < ?"
            args = (lo, hi)
        cursor = conn.execute(sql + " ORDER BY idx", args)
        return _hash_rows(cursor, lo)
    finally:
        conn.close()


class RowCursor(Protocol):
    """A cursor over `(idx, entry)` rows read in batches (sqlite3's and psycopg's)."""

    def fetchmany(self, size: int, /) -> list[Any]: ...


def _hash_rows(cursor: RowCursor, expected: int) -> tuple[bytes, list[RawProblem], int]:
    sha = hashlib.sha256
    parts: list[bytes] = []
    problems: list[RawProblem] = []
    while True:
        rows = cursor.fetchmany(32768)
        if not rows:
            break
        if not all(type(data) is bytes for _, data in rows):
            for idx, data in rows:
                if type(data) is not bytes:
                    kind = type(data).__name__
                    problems.append(("malformed", f"stored as {kind}, not bytes", idx))
            rows = [(i, d if type(d) is bytes else str(d).encode()) for i, d in rows]
        if rows[0][0] == expected and rows[-1][0] == expected + len(rows) - 1:
            parts += [sha(b"\x00" + data).digest() for _, data in rows]
            problems += [
                ("malformed", why, idx)
                for idx, data in rows
                if (why := check_entry(data)) is not None
            ]
            expected += len(rows)
            continue
        for idx, data in rows:  # a gap somewhere in this chunk: go slowly, say where
            if idx != expected:
                problems.append(("missing", f"entries {expected}..{idx - 1} are missing", expected))
                expected = idx
            parts.append(sha(b"\x00" + data).digest())
            why = check_entry(data)
            if why is not None:
                problems.append(("malformed", why, idx))
            expected += 1
    return b"".join(parts), problems, expected

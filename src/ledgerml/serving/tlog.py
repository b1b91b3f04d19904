"""C2SP `tlog-tiles` read endpoints served from the ledger's height-4 tiles.

A tlog-tiles tile (height 8) at level L, index N is the concatenation of the 16
height-4 tiles at tile level 2L, indices 16N..16N+15 (see `ledger/tiles.py`);
a partial tile `.p/W` is its first W hashes. Entry bundles are the entries
256N..256N+W-1, each prefixed with its length as a big-endian uint16.
Reads run in one SQLite snapshot of the ledger file (read-only, schema untouched).
"""

from __future__ import annotations

import re
import sqlite3
import struct
from dataclasses import dataclass
from typing import Protocol

from ledgerml.errors import InputError
from ledgerml.ledger.merkle import HASH_SIZE

TILE_WIDTH = 256
#: tlog-tiles path elements are ASCII only: `\d` and `$` would also take Arabic-Indic
#: digits and a trailing newline (`000%0A`), so the patterns spell out [0-9] and fullmatch.
_ELEM = re.compile(r"x[0-9]{3}", re.ASCII)
_LAST = re.compile(r"[0-9]{3}", re.ASCII)
_NUMBER = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)
#: No tree of up to 2^63 entries has a tile (or entry bundle) index this large; bounding it
#: keeps every SQLite integer in range (an unbounded index raised OverflowError, a 500).
MAX_INDEX = 2**55


@dataclass(frozen=True)
class TilePath:
    """A parsed `/tile/...` path: level (None for entries), index, width (256 = full)."""

    level: int | None
    index: int
    width: int

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH


def parse_tile_path(path: str) -> TilePath:
    """Parse `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]` with N as x-prefixed 3-digit groups."""
    parts = path.split("/")
    if len(parts) < 2:
        raise InputError("expected <L>/<N>[.p/<W>]", field="path")
    head, rest = parts[0], parts[1:]
    if head == "entries":
        level = None
    elif _NUMBER.fullmatch(head) and int(head) <= 63:
        level = int(head)
    else:
        raise InputError("tile level must be 0..63 or `entries`", field="L")
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not _NUMBER.fullmatch(w) or not 1 <= int(w) <= 255:
            raise InputError("partial width must be 1..255", field="W")
        width = int(w)
        rest = [*rest[:-2], rest[-2][:-2]]
    if not rest or not all(_ELEM.fullmatch(e) for e in rest[:-1]) or not _LAST.fullmatch(rest[-1]):
        raise InputError(
            "tile index must be 3-digit groups, all but the last x-prefixed", field="N"
        )
    index = 0
    for e in rest:
        index = index * 1000 + int(e.lstrip("x"))
    if len(rest) > 1 and rest[0] == "x000":
        raise InputError("tile index has a leading zero group", field="N")
    if index >= MAX_INDEX:
        raise InputError("tile index is beyond any possible tree", field="N")
    return TilePath(level, index, width)


def tile_path(level: int | str, index: int, width: int = TILE_WIDTH) -> str:
    """Inverse of `parse_tile_path` (used by tests and clients)."""
    groups = []
    n = index
    while True:
        groups.append(n % 1000)
        n //= 1000
        if n == 0:
            break
    elems = [f"x{g:03d}" for g in reversed(groups[1:])] + [f"{groups[0]:03d}"]
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return f"{level}/{'/'.join(elems)}{suffix}"


class TileSource(Protocol):
    """Where tiles and entries are read from: `SQLiteRows` over ledger.db, or the PostgreSQL
    ledger itself (one snapshot per call)."""

    def tile_rows(self, level: int, lo: int, hi: int) -> dict[int, bytes]: ...

    def entry_range(self, lo: int, hi: int) -> list[bytes]: ...


@dataclass(frozen=True)
class SQLiteRows:
    """ledger.db's tiles and entries through one SQLite connection (the caller holds the
    snapshot: BEGIN … COMMIT around the read)."""

    conn: sqlite3.Connection

    def tile_rows(self, level: int, lo: int, hi: int) -> dict[int, bytes]:
        rows = self.conn.execute(
            "SELECT idx, hashes FROM tiles WHERE level=? AND idx BETWEEN ? AND ?", (level, lo, hi)
        )
        return {int(i): bytes(h) for i, h in rows}

    def entry_range(self, lo: int, hi: int) -> list[bytes]:
        rows = self.conn.execute(
            "SELECT entry FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (lo, hi)
        )
        return [bytes(e) for (e,) in rows]


def read_tlog(source: TileSource, tp: TilePath) -> bytes | None:
    """The entry bundle or the tile `tp` names (None when the log does not hold it yet)."""
    return read_entry_bundle(source, tp) if tp.level is None else read_tile(source, tp)


def read_tile(source: TileSource, tp: TilePath) -> bytes | None:
    """The tile's hashes, or None when the log does not (yet) hold that many."""
    assert tp.level is not None
    first = tp.index * 16
    rows = source.tile_rows(2 * tp.level, first, first + 15)
    data = b"".join(rows[first + k] for k in range(16) if first + k in rows)
    need = tp.width * HASH_SIZE
    if len(data) < need:
        return None
    return data[:need]


def read_entry_bundle(source: TileSource, tp: TilePath) -> bytes | None:
    """Entries 256N..256N+W-1, each as u16 big-endian length ‖ bytes; None if not all exist."""
    lo = tp.index * TILE_WIDTH
    rows = source.entry_range(lo, lo + tp.width)
    if len(rows) < tp.width:
        return None
    out = []
    for entry in rows:
        if len(entry) > 0xFFFF:
            raise InputError("an entry in this bundle is over 65,535 bytes", field="N")
        out.append(struct.pack(">H", len(entry)) + entry)
    return b"".join(out)

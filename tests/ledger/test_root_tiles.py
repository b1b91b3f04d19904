"""A root is computed from tiles read in one query (`roots_of`), and equals the root the
lazy, one-tile-per-peak reading gives and an independent RFC 9162 computation."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from ledgerml.errors import VerificationError
from ledgerml.ledger.edge import root_tiles, tile_range_hasher
from ledgerml.ledger.sqlite import Ledger, _read_tiles


def _rfc9162_root(leaves: Sequence[bytes]) -> bytes:
    """MTH per RFC 9162 §2.1.1, written out here (not the library's merkle module)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    left, right = _rfc9162_root(leaves[:k]), _rfc9162_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_roots_of_reads_every_peak_tile_in_one_query(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    sizes = [1, 2, 3, 15, 16, 17, 255, 256, 257, 300, 4_097, 5_000]
    with Ledger(path, origin="test/roots") as ledger:
        ledger.append_many([("x.note", {"n": n}) for n in range(max(sizes))])
        entries = [e for _, e in ledger.entries()]
    conn = sqlite3.connect(path)
    try:
        calls: list[list[tuple[int, int]]] = []

        def counting(keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
            calls.append(list(keys))
            return _read_tiles(conn, keys)

        for size in sizes:
            calls.clear()
            preloaded = tile_range_hasher(counting, roots_of=[size])(0, size)
            assert len(calls) == 1, f"size {size}: {len(calls)} tile queries, not one"
            assert calls[0] == root_tiles(size)

            calls.clear()
            lazy = tile_range_hasher(counting)(0, size)
            assert lazy == preloaded == _rfc9162_root(entries[:size]), size
    finally:
        conn.close()


def test_a_missing_peak_tile_still_fails_closed(tmp_path: Path) -> None:
    """Preloading only seeds a cache: a tile the store lacks is still an error."""
    path = tmp_path / "ledger.db"
    with Ledger(path, origin="test/roots") as ledger:
        ledger.append_many([("x.note", {"n": n}) for n in range(300)])
    conn = sqlite3.connect(path)
    try:
        level, index = root_tiles(300)[0]
        conn.execute("DELETE FROM tiles WHERE level=? AND idx=?", (level, index))
        conn.commit()
        hasher = tile_range_hasher(lambda keys: _read_tiles(conn, keys), roots_of=[300])
        with pytest.raises(VerificationError, match="incomplete"):
            hasher(0, 300)
    finally:
        conn.close()

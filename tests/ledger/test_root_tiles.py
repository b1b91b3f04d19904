"""A root is computed from tiles read in one query, and a writer re-checking the signed
root before extending the tree reads the keys, the newest checkpoint and every tile it
needs in two queries — with the same result as the lazy, one-tile-per-peak reading and an
independent RFC 9162 computation. Both drivers."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.errors import VerificationError
from ledgerml.ledger.edge import _Edge, root_tiles, tile_range_hasher
from ledgerml.ledger.postgres import open_url

SIZES = [1, 2, 3, 15, 16, 17, 255, 256, 257, 300, 4_097, 5_000]


def _rfc9162_root(leaves: Sequence[bytes]) -> bytes:
    """MTH per RFC 9162 §2.1.1, written out here (not the library's merkle module)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    left, right = _rfc9162_root(leaves[:k]), _rfc9162_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


class _Counting:
    """The driver's own tile reads, recorded (the real queries run)."""

    def __init__(self, ledger: Any) -> None:
        self.tile_reads: list[list[tuple[int, int]]] = []
        self.real = ledger._read_tiles
        ledger._read_tiles = self.read

    def read(self, conn: Any, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self.tile_reads.append(list(keys))
        return self.real(conn, keys)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Any]:
    signer = NoteSigner.ed25519("test/roots", Ed25519Signer.generate())
    with open_url(ledger_url, origin="test/roots", signers=[signer]) as lg:
        lg.append_many([("x.note", {"n": n}) for n in range(max(SIZES))])
        lg.checkpoint()
        yield lg


def test_a_root_reads_its_peak_tiles_in_one_query(ledger: Any) -> None:
    entries = [e for _, e in ledger.entries()]
    counting = _Counting(ledger)
    for size in SIZES:
        counting.tile_reads.clear()
        root = ledger.root(size)
        assert counting.tile_reads == [root_tiles(size)], size
        assert root == _rfc9162_root(entries[:size]), size
        with ledger._snapshot("test") as conn:  # the lazy reading agrees
            lazy = tile_range_hasher(lambda ks, c=conn: counting.real(c, ks))(0, size)
        assert lazy == root, size


def test_the_writers_extension_check_reads_tiles_once(ledger: Any) -> None:
    """`_checked_edge`: the newest checkpoint's root tiles and the edge's, one read."""
    size = ledger.size()
    counting = _Counting(ledger)
    ledger._trusted_notes.clear()  # as a process that did not sign the newest checkpoint
    with ledger._snapshot("test") as conn:
        edge = ledger._checked_edge(conn, size)
    assert len(counting.tile_reads) == 1
    assert set(counting.tile_reads[0]) == set(root_tiles(size)) | set(_Edge.needed_tiles(size))
    assert edge.size == size and edge.root() == ledger.root()


def test_a_missing_peak_tile_still_fails_closed(tmp_path: Any) -> None:
    """Preloading only seeds a cache: a tile the store lacks is still an error, and the
    writer's check refuses to write."""
    path = tmp_path / "ledger.db"
    signer = NoteSigner.ed25519("test/roots", Ed25519Signer.generate())
    with open_url(str(path), origin="test/roots", signers=[signer]) as lg:
        lg.append_many([("x.note", {"n": n}) for n in range(300)])
        lg.checkpoint()
    conn = sqlite3.connect(path)
    level, index = root_tiles(300)[0]
    conn.execute("DELETE FROM tiles WHERE level=? AND idx=?", (level, index))
    conn.commit()
    conn.close()
    with open_url(str(path), origin="test/roots", signers=[signer]) as lg:
        with pytest.raises(VerificationError, match="incomplete"):
            lg.root(300)
        with pytest.raises(VerificationError, match="incomplete"):
            lg.append("x.note", {"n": 300})

"""The tree edge and reading the tree from stored tiles, for any driver.

A writer keeps the right edge of the tree in memory (`_Edge`: the last two tiles of
each tile level) so an append computes the tiles to write without reading the log;
`tile_range_hasher` answers any range hash (roots, proofs) from stored tiles, given a
driver's function that reads tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ledgerml.errors import VerificationError
from ledgerml.ledger import merkle
from ledgerml.ledger.tiles import (
    HEIGHT,
    TILE_BYTES,
    WIDTH,
    node_from_tile,
    node_location,
    perfect_root,
)

_HS = merkle.HASH_SIZE


def _open_tiles(size: int) -> list[tuple[int, int]]:
    """(tile level, index of its open tile) for each tile level of a tree of `size`."""
    out = []
    t = 0
    while True:
        count = size >> (HEIGHT * t)
        if count == 0 and t > 0:
            break
        out.append((t, count // WIDTH))
        if count < WIDTH:
            break
        t += 1
    return out


class _Edge:
    """The right edge of the tree: the last two tiles of each tile level."""

    def __init__(self, size: int, tiles: dict[tuple[int, int], bytes]) -> None:
        self.size = size
        # per tile level: [index of the open tile, its hashes, previous tile's hashes]
        self.levels: list[list[Any]] = [
            [tidx, bytearray(tiles.get((t, tidx), b"")), tiles.get((t, tidx - 1), b"")]
            for t, tidx in _open_tiles(size)
        ]

    @staticmethod
    def needed_tiles(size: int) -> list[tuple[int, int]]:
        keys = [k for t, tidx in _open_tiles(size) for k in ((t, tidx), (t, tidx - 1))]
        return [k for k in keys if k[1] >= 0]

    def append(self, hashes: Sequence[bytes] | bytes) -> dict[tuple[int, int], bytes]:
        """Add leaf hashes (a sequence, or already concatenated); return the tiles
        (full or partial) to write."""
        dirty: dict[tuple[int, int], bytes] = {}
        data = hashes if isinstance(hashes, bytes) else b"".join(hashes)
        added = len(data) // _HS
        t = 0
        while data:
            if t == len(self.levels):
                self.levels.append([0, bytearray(), b""])
            state = self.levels[t]
            buf = bytes(state[1]) + data
            parents = []
            full_count = len(buf) // TILE_BYTES
            for f in range(full_count):
                full = buf[f * TILE_BYTES : (f + 1) * TILE_BYTES]
                dirty[(t, state[0])] = full
                parents.append(perfect_root(full))
                state[0] += 1
                state[2] = full
            rest = buf[full_count * TILE_BYTES :]
            state[1] = bytearray(rest)
            if rest:
                dirty[(t, state[0])] = rest
            data = b"".join(parents)
            t += 1
        self.size += added
        return dirty

    def _node(self, level: int, index: int) -> bytes:
        tile_level, tidx, offset, count = node_location(level, index)
        state = self.levels[tile_level]
        tile = bytes(state[1]) if tidx == state[0] else state[2]
        node = node_from_tile(tile, offset, count)
        if node is None:  # pragma: no cover - a broken invariant, fail loudly
            raise RuntimeError(f"node ({level},{index}) missing from the tree edge")
        return node

    def root(self) -> bytes:
        if self.size == 0:
            return merkle.EMPTY_ROOT
        peaks = []
        lo = 0
        for bit in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> bit & 1:
                peaks.append(self._node(bit, lo >> bit))
                lo += 1 << bit
        root = peaks[-1]
        for peak in reversed(peaks[:-1]):
            root = merkle.node_hash(peak, root)
        return root


TileKey = tuple[int, int]  # (tile level, tile index)
TileReader = Callable[[Sequence[TileKey]], dict[TileKey, bytes]]


def root_tiles(size: int) -> list[tuple[int, int]]:
    """(tile level, index) of the tiles holding the peaks of a tree of `size`: all a root
    needs, so it can be read in one query instead of one per peak."""
    keys: list[tuple[int, int]] = []
    lo = 0
    for bit in range(size.bit_length() - 1, -1, -1):
        if size >> bit & 1:
            tile_level, tidx, _, _ = node_location(bit, lo >> bit)
            keys.append((tile_level, tidx))
            lo += 1 << bit
    return sorted(set(keys))


def tile_range_hasher(
    read_tiles: TileReader, preloaded: dict[TileKey, bytes] | None = None
) -> merkle.RangeHash:
    """Hashes of any range of leaves from stored tiles (each tile read once): any driver.

    `preloaded`: tiles already read (e.g. every `root_tiles` of the sizes whose roots will
    be asked for, in one query: on PostgreSQL one query per peak was a dozen round trips).
    A tile not among them is read when needed; one the store lacks fails closed.
    """
    cache: dict[TileKey, bytes] = dict(preloaded or {})

    def perfect(lo: int, hi: int) -> bytes:
        level = (hi - lo).bit_length() - 1
        tile_level, tidx, offset, count = node_location(level, lo >> level)
        tile = cache.get((tile_level, tidx))
        if tile is None:
            tile = read_tiles([(tile_level, tidx)]).get((tile_level, tidx), b"")
            cache[(tile_level, tidx)] = tile
        node = node_from_tile(tile, offset, count)
        if node is None:
            raise VerificationError(
                f"stored subtree hashes are incomplete at level {level} (fail closed)"
            )
        return node

    return merkle.range_hash_from_perfect(perfect)
